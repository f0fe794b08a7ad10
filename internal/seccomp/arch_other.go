//go:build linux && !amd64

package seccomp

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Only x86_64 has a system call table here; Compile refuses the rest.
const (
	archName  = runtime.GOARCH
	auditArch = 0
	x32Bit    = 0
)

var syscallNumbers = map[string]uint32{}

func archKnown(specs.Arch) bool { return false }
