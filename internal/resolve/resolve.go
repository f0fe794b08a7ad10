// Package resolve opens paths with the kernel doing the resolution
// (openat2(2)), so that a path from an image or a container can never lead
// outside the directory it is meant to stay in. It is the one place crib
// calls openat2 and retries it.
//
// It imports only the standard library and x/sys. Internal to crib; no API
// compatibility promised.
package resolve

import (
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// maxRetries bounds the EAGAIN retries of one open. openat2(2) returns
// EAGAIN when a rename anywhere on the system raced with a ".." or
// RESOLVE_IN_ROOT check; a retry almost always succeeds, and a bound keeps
// a host busy renaming from spinning a caller forever.
const maxRetries = 64

// Openat2 is openat2(2) retried on EAGAIN and EINTR.
func Openat2(dirfd int, path string, how *unix.OpenHow) (int, error) {
	for range maxRetries {
		fd, err := unix.Openat2(dirfd, path, how)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// InRoot opens name inside the directory root as if root were "/"
// (RESOLVE_IN_ROOT): absolute symlinks and ".." on the way stay inside it,
// and /proc magic links are refused (RESOLVE_NO_MAGICLINKS), should a mount
// ever appear below root. flags are open(2) flags; O_CLOEXEC is added.
// extra adds RESOLVE_* flags. A leading "/" on name is ignored.
func InRoot(root int, name string, flags int, extra uint64) (int, error) {
	name = strings.TrimLeft(name, "/")
	if name == "" {
		name = "."
	}
	return Openat2(root, name, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | extra,
	})
}
