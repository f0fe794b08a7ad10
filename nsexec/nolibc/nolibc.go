//go:build linux && amd64 && !cgo

// Package nolibc is the entry point of crib-init built without libc (cgo
// off): _crib_start, which the binary must be linked to start at
// (-ldflags=-E=_crib_start), runs nsexec's C code (hack/nolibc.sh builds it
// into nsexec_linux_amd64.syso, nolibc.h says why) on the process's initial
// stack, then jumps to the Go runtime's own entry. Built with cgo, crib-init
// links package nsexec, whose constructor does the same under glibc.
//
// Internal to crib; no API compatibility promised.
package nolibc

// entered is set by _crib_start before the Go runtime starts. A binary
// linked without the entry point would start with nsexec never run: the
// init would set up a container in the launcher's namespaces.
var entered uint8

func init() {
	if entered == 0 {
		panic("nsexec/nolibc: crib-init was linked without -ldflags=-E=_crib_start, so nsexec did not run")
	}
}
