//go:build linux

package seccomp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the filter on the calling thread (the one that will
// execve). The caller must have set no_new_privs or hold CAP_SYS_ADMIN.
// After it returns, every system call of the thread passes the filter.
func (f *Filter) Load() error {
	if len(f.Program) == 0 {
		return fmt.Errorf("seccomp: empty program")
	}
	prog := unix.SockFprog{Len: uint16(len(f.Program)), Filter: &f.Program[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(f.Flags), uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return fmt.Errorf("seccomp: load filter (%d instructions): %w", len(f.Program), errno)
	}
	return nil
}
