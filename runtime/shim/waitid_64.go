//go:build amd64 || arm64 || ppc64le || riscv64 || s390x || loong64

package shim

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The layout below is the 64-bit kernel's; a 32-bit one puts si_pid
// elsewhere, hence the build constraint.

// childInfo is the start of a siginfo_t as waitid fills it for a child on
// 64-bit Linux: si_pid follows signo, errno and code, 8-byte aligned.
type childInfo struct {
	signo, errno, code, _ int32
	pid                   int32
	_                     [108]byte
}

// nextExited is an exited child, left unreaped (WNOWAIT), or 0 for none.
func nextExited() int {
	var info childInfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, (*unix.Siginfo)(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0
		}
		return int(info.pid)
	}
}
