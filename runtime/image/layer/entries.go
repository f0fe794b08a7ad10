package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// mkdir creates a directory entry, or updates the metadata of the directory
// already there. Its times are set by finishDirs, after its children.
func (a *applier) mkdir(hdr *tar.Header, name, parent, base string) error {
	pfd, err := a.openParent(parent)
	if err != nil {
		return err
	}
	opaque := false
	if name != "." {
		err := unix.Mkdirat(pfd, base, 0o700)
		if err == unix.EEXIST {
			var st unix.Stat_t
			if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("stat existing: %w", err)
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = nil
			} else {
				// A directory after its own whiteout in one layer means
				// "the lower one is gone, this is new": opaque says that.
				opaque = isWhiteout(&st)
				if err := a.remove(pfd, base); err != nil {
					return err
				}
				err = unix.Mkdirat(pfd, base, 0o700)
			}
		}
		if err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer unix.Close(fd)
	if err := a.setFdMeta(fd, hdr, name); err != nil {
		return err
	}
	if opaque {
		if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", opaqueXattr, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	a.dirs[st.Ino] = &dirInfo{name: name, times: times(hdr), hasTimes: true}
	return nil
}

// file creates a regular file and streams its content.
func (a *applier) file(hdr *tar.Header, r io.Reader, parent, base string) error {
	pfd, err := a.openParent(parent)
	if err != nil {
		return err
	}
	fd := -1
	err = a.create("create", pfd, base, func() (err error) {
		// O_EXCL never follows a symlink at base, dangling or not.
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	err = a.fillFile(fd, hdr, r, base)
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	if err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

// fillFile writes content first and metadata after: write(2) clears setuid,
// setgid and security.capability, and so does chown.
func (a *applier) fillFile(fd int, hdr *tar.Header, r io.Reader, base string) error {
	if err := a.writeContent(fd, hdr, r); err != nil {
		return err
	}
	if err := a.setFdMeta(fd, hdr, base); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	a.record(&st)
	return nil
}

// link creates a hard link to an earlier entry. The link header's own
// metadata is not applied: the inode already has its entry's metadata, and a
// link to a symlink could not take a mode anyway.
func (a *applier) link(hdr *tar.Header, parent, base string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if target == "." {
		return errors.New("hard link to the layer root")
	}
	pfd, err := a.openParent(parent)
	if err != nil {
		return err
	}
	// After openParent, which may replace the cached fd lookupDir returns.
	tparent, tbase := splitName(target)
	tfd, owned, err := a.lookupDir(tparent)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
	}
	if owned {
		defer unix.Close(tfd)
	}
	// Flags 0: a link to a symlink links the symlink, never what it names.
	err = a.create("link", pfd, base, func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) })
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("hard link target %q: %w", hdr.Linkname, unix.ENOENT)
	}
	return err
}

// node creates a symlink, device or fifo: inodes with no content, set up
// through the parent fd and their name since opening them is either
// impossible (symlink), blocking (fifo) or pointless (device).
func (a *applier) node(hdr *tar.Header, parent, base string) error {
	pfd, err := a.openParent(parent)
	if err != nil {
		return err
	}
	var op string
	var mk func() error
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		op, mk = "symlink", func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) }
	case tar.TypeFifo:
		op, mk = "mkfifo", func() error { return unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0) }
	default:
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return fmt.Errorf("invalid device number %d:%d", hdr.Devmajor, hdr.Devminor)
		}
		kind := uint32(unix.S_IFCHR)
		if hdr.Typeflag == tar.TypeBlock {
			kind = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		op, mk = "mknod", func() error { return unix.Mknodat(pfd, base, kind|0o600, dev) }
	}
	if err := a.create(op, pfd, base, mk); err != nil {
		return err
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// Symlink permissions mean nothing on Linux and cannot be changed.
	if hdr.Typeflag != tar.TypeSymlink {
		if err := chmodNoFollow(pfd, base, mode(hdr)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := a.setXattrs(hdr, base, func(attr string, value []byte) error {
		return unix.Lsetxattr(procPath(pfd, base), attr, value, 0)
	}); err != nil {
		return err
	}
	if err := setTimes(pfd, base, hdr); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	a.record(&st)
	return nil
}

// whiteout turns ".wh.<target>" into the overlayfs whiteout for target.
func (a *applier) whiteout(parent, target string) error {
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("invalid whiteout for %q", target)
	}
	pfd, err := a.openParent(parent)
	if err != nil {
		return err
	}
	err = unix.Mknodat(pfd, target, unix.S_IFCHR, 0)
	if err == unix.EEXIST {
		// The image spec: a whiteout hides lower layers only; what this
		// layer wrote under the name stays. A directory of this layer must
		// still hide the lower one's content, which is what opaque does.
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat existing: %w", err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return setOpaque(pfd, target)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("mknod whiteout: %w", err)
	}
	// root:root even under a setgid directory, which would lend its group.
	if err := unix.Fchownat(pfd, target, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown whiteout: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat whiteout: %w", err)
	}
	a.record(&st)
	return nil
}

// opaque marks the directory name opaque, creating it if the marker comes
// before the directory's own entry.
func (a *applier) opaque(name string) error {
	fd, err := a.openParent(name)
	if err != nil {
		return err
	}
	return setOpaque(fd, ".")
}

// setOpaque sets the overlayfs opaque xattr on the directory base under pfd,
// which may be an O_PATH fd: fsetxattr needs a real one, opened here.
func setOpaque(pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open opaque directory: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("set xattr %s: %w", opaqueXattr, err)
	}
	return nil
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// setFdMeta applies owner, mode and xattrs through fd, in the order the
// kernel needs: chown clears setuid, setgid and security.capability on
// non-directories, so mode and xattrs come after it.
func (a *applier) setFdMeta(fd int, hdr *tar.Header, entry string) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode(hdr)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return a.setXattrs(hdr, entry, func(attr string, value []byte) error {
		return unix.Fsetxattr(fd, attr, value, 0)
	})
}

// setXattrs applies the entry's SCHILY.xattr.* PAX records with set.
func (a *applier) setXattrs(hdr *tar.Header, entry string, set func(name string, value []byte) error) error {
	for key, value := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") {
			// overlayfs reads its own xattrs from lower dirs (redirect,
			// metacopy, origin); a layer must not steer lookups in the
			// mount. Opacity travels as .wh..wh..opq, not as an xattr.
			klog.FromContext(a.ctx).V(4).Info("Dropped overlayfs xattr from layer", "entry", entry, "xattr", name)
			continue
		}
		err := set(name, []byte(value))
		if err == nil {
			continue
		}
		// ENOTSUP: the filesystem has no such namespace. EPERM for user.*
		// on a symlink or device: xattr(7) allows user attributes on
		// regular files and directories only. Docker and containerd skip
		// both rather than fail the pull.
		userOnNode := err == unix.EPERM && strings.HasPrefix(name, "user.") &&
			hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir
		if err == unix.ENOTSUP || userOnNode {
			klog.FromContext(a.ctx).V(4).Info("Skipped xattr the filesystem refused", "entry", entry, "xattr", name, "err", err)
			continue
		}
		return fmt.Errorf("set xattr %s: %w", name, err)
	}
	return nil
}

// procPath names base under the directory pfd through /proc, for the l*xattr
// calls, which have no *at form: the magic link resolves to the directory
// itself, and lsetxattr does not follow base.
func procPath(pfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
}

// chmodNoFollow changes the mode of the device or fifo just created at base.
// fchmodat2 (Linux 6.6) can refuse to follow; on older kernels plain
// fchmodat is used, which is safe only because base was just made by mknod
// and so is not a symlink.
func chmodNoFollow(pfd int, base string, mode uint32) error {
	err := unix.Fchmodat(pfd, base, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		err = unix.Fchmodat(pfd, base, mode, 0)
	}
	return err
}

// setTimes sets atime and mtime on base without following it.
func setTimes(pfd int, base string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// times returns atime and mtime for utimensat. Most tars carry no atime;
// the mtime stands in for it then, as docker does.
func times(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	ts, err := unix.TimeToTimespec(t)
	if err != nil {
		// Out of range for this platform's time_t: the epoch is as good
		// a wrong answer as any and keeps a bad header from failing.
		return unix.Timespec{}
	}
	return ts
}
