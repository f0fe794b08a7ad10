package initproc

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// root resolves paths inside a container's rootfs before pivot_root.
//
// A rootfs comes from an image, and an image is untrusted: its /proc, /mnt
// or /dev/shm may be symlinks to anywhere on the host. Joining strings and
// calling mount(2) on the result would follow them out of the rootfs (the
// runc CVE-2021-30465 family). So no path under the rootfs is ever handed
// to the kernel as a string: every destination is opened with openat2(2)
// and RESOLVE_IN_ROOT, which resolves symlinks and ".." as if the rootfs
// were "/", and the mount goes onto /proc/self/fd/N of that O_PATH fd; the
// kernel mounts on the object the fd points at. Missing components are
// created by a walk that opens one name at a time relative to its parent's
// fd with O_NOFOLLOW, and restarts from the rootfs with the rewritten path
// whenever it meets a symlink, so creation never leaves the rootfs either.
// Nothing from the image runs yet while init does this, so the only
// concurrent writers are the host's own.
type root struct {
	fd   int
	path string // the rootfs on the host, for messages and pivot_root
}

func openRoot(p string) (*root, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs %s: %w", p, err)
	}
	return &root{fd: fd, path: p}, nil
}

func (r *root) close() { unix.Close(r.fd) }

// procPath is the magic link through which mount(2) and friends reach fd.
func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// cleanIn makes p an absolute, clean path inside the rootfs ("../x" → "/x").
func cleanIn(p string) string { return path.Clean("/" + p) }

// open resolves p inside the rootfs and returns an O_PATH fd of it.
// extra adds RESOLVE_* flags (RESOLVE_NO_SYMLINKS for proc and sysfs).
func (r *root) open(p string, flags int, extra uint64) (int, error) {
	return resolve.InRoot(r.fd, cleanIn(p), unix.O_PATH|flags, extra)
}

// resolve is open without the lexical clean: p is handed to the kernel as
// written, so ".." after a symlink or a /proc magic link is resolved (and
// refused, for the magic link) by the kernel rather than erased first.
// For paths the container's user names (working directory, command),
// where "/proc/self/fd/5/.." must fail rather than become "/proc/self/fd".
func (r *root) resolve(p string, flags int) (int, error) {
	return resolve.InRoot(r.fd, p, flags, 0)
}

// mkdirAll returns an O_PATH fd of directory p inside the rootfs, creating
// it and its parents (mode 0755) as needed.
func (r *root) mkdirAll(p string) (int, error) {
	fd, err := r.open(p, unix.O_DIRECTORY, 0)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	if fd, err := r.mkdirLast(p); err == nil {
		return fd, nil
	}
	return r.walkCreate(cleanIn(p))
}

// mkdirLast is mkdirAll's fast path, for the common case of a missing last
// component (a mount point such as /dev/pts or one cgroup hierarchy's
// directory): the parent is resolved in the rootfs, the name made in it,
// and the result resolved in the rootfs again, three calls where the walk
// makes a dozen. Anything else (a missing parent, a dangling symlink, a
// racer) fails here and takes the walk, which handles it.
func (r *root) mkdirLast(p string) (int, error) {
	dir, base := path.Split(cleanIn(p))
	if base == "" {
		return -1, unix.EEXIST
	}
	parent, err := r.open(dir, unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(parent, base, 0o755)
	unix.Close(parent)
	if err != nil {
		return -1, err
	}
	return r.open(p, unix.O_DIRECTORY, 0)
}

// walkCreate is mkdirAll's slow path. See the type's comment.
func (r *root) walkCreate(p string) (int, error) {
	const maxSteps = 255 // symlinks followed plus directories created
	steps := 0
restart:
	cur, err := unix.Dup(r.fd)
	if err != nil {
		return -1, err
	}
	done := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for len(rest) > 0 {
		name := rest[0]
		if name == "" {
			rest = rest[1:]
			continue
		}
		if steps++; steps > maxSteps {
			unix.Close(cur)
			return -1, unix.ELOOP
		}
		next, err := unix.Openat(cur, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(cur, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(cur)
				return -1, err
			}
			continue // open what we (or a racer) just made
		}
		if err != nil {
			unix.Close(cur)
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(next, &st); err != nil {
			unix.Close(next)
			unix.Close(cur)
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			unix.Close(cur)
			cur, done, rest = next, path.Join(done, name), rest[1:]
		case unix.S_IFLNK:
			target, err := readlinkFd(next)
			unix.Close(next)
			unix.Close(cur)
			if err != nil {
				return -1, err
			}
			if !path.IsAbs(target) {
				target = path.Join(done, target)
			}
			// Cleaning at the rootfs' "/" turns every ".." that would climb
			// out of it into a no-op, as RESOLVE_IN_ROOT does.
			p = cleanIn(path.Join(append([]string{target}, rest[1:]...)...))
			goto restart
		default:
			unix.Close(next)
			unix.Close(cur)
			return -1, unix.ENOTDIR
		}
	}
	return cur, nil
}

// mkfile returns an O_PATH fd of p inside the rootfs, creating an empty
// file there (and its parents) when p does not exist: the mount point of a
// bind mount whose source is not a directory.
func (r *root) mkfile(p string) (int, error) {
	fd, err := r.open(p, 0, 0)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	p = cleanIn(p)
	dir, base := path.Split(p)
	if base == "" {
		return -1, unix.EISDIR
	}
	dfd, err := r.mkdirAll(dir)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	// O_PATH dirfds cannot be written through; reopen the directory.
	wfd, err := unix.Openat(dfd, ".", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(wfd)
	f, err := unix.Openat(wfd, base, unix.O_CREAT|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, err
	}
	if err == nil {
		unix.Close(f)
	}
	return unix.Openat(wfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// parentDir returns a readable fd of the directory that holds p inside the
// rootfs (created if missing) and p's last component, for the *at calls
// that create nodes (mknodat, symlinkat).
func (r *root) parentDir(p string) (int, string, error) {
	p = cleanIn(p)
	dir, base := path.Split(p)
	if base == "" {
		return -1, "", unix.EISDIR
	}
	dfd, err := r.mkdirAll(dir)
	if err != nil {
		return -1, "", err
	}
	defer unix.Close(dfd)
	wfd, err := unix.Openat(dfd, ".", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	return wfd, base, err
}

func readlinkFd(fd int) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
