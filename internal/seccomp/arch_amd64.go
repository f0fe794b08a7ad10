//go:build linux && amd64

package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	archName  = "x86_64"
	auditArch = unix.AUDIT_ARCH_X86_64
	// x32Bit is __X32_SYSCALL_BIT: x32 system calls arrive with the
	// x86_64 audit arch and this bit set in nr.
	x32Bit = 0x40000000
)

// archKnown reports whether a profile may name architecture a. The
// profile's list says which ABIs the container may use; crib's filter
// allows only the native one (see Compile), so the list is checked, not
// used: Docker's and containerd's profiles name x86, x32 and x86_64.
func archKnown(a specs.Arch) bool {
	switch a {
	case specs.ArchX86_64, specs.ArchX86, specs.ArchX32:
		return true
	}
	return false
}
