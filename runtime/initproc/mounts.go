package initproc

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// mounter mounts the spec's mounts inside one rootfs, before pivot_root.
type mounter struct {
	root *root
	spec *specs.Spec
	// roLater lists destinations mounted read-write although the spec asks
	// for "ro" (tmpfs and /dev), because later mounts and device nodes
	// still go inside them; finalizeMounts makes them read-only.
	roLater []string
	// cgroupMounts are the host's cgroup hierarchies as the shim listed
	// them; nil when it did not, and init reads mountinfo itself.
	cgroupMounts []initmsg.CgroupMount
}

// specMounts returns the spec's mounts, with /dev/shm replaced by a bind
// of devShm (the pod's shared one) when it is set.
func specMounts(spec *specs.Spec, devShm string) []specs.Mount {
	if devShm == "" {
		return spec.Mounts
	}
	shm := specs.Mount{
		Destination: "/dev/shm",
		Type:        "bind",
		Source:      devShm,
		Options:     []string{"rbind", "nosuid", "nodev", "noexec"},
	}
	out := make([]specs.Mount, 0, len(spec.Mounts)+1)
	replaced := false
	for _, m := range spec.Mounts {
		if cleanIn(m.Destination) == "/dev/shm" {
			if !replaced {
				out = append(out, shm)
			}
			replaced = true
			continue
		}
		out = append(out, m)
	}
	if !replaced {
		out = append(out, shm)
	}
	return out
}

// mount mounts m inside the rootfs.
func (mt *mounter) mount(m specs.Mount) error {
	dest := cleanIn(m.Destination)
	o, err := parseMountOptions(m.Options)
	if err == nil && (len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0) {
		err = errors.New("idmapped mounts: not supported yet")
	}
	if err != nil {
		return fail(stepMount, dest, fmt.Errorf("mount %s on %s: %w", m.Type, dest, err))
	}
	switch {
	case o.flags&unix.MS_BIND != 0 || m.Type == "bind":
		err = mt.bind(m.Source, dest, o)
	case m.Type == "cgroup" || m.Type == "cgroup2":
		err = mt.cgroup(dest, o)
	case m.Type == "sysfs":
		err = mt.sysfs(m.Source, dest, o)
	case m.Type == "overlay":
		err = mt.overlay(dest, o)
	default:
		err = mt.fs(m.Source, dest, m.Type, o)
	}
	return fail(stepMount, dest, err)
}

// target returns an O_PATH fd of the mount point dest inside the rootfs,
// created as a directory (or as a file when dir is false). proc and sysfs
// pass RESOLVE_NO_SYMLINKS: they must land on an ordinary directory, never
// through a symlink the image planted (mounting procfs over the image's
// /etc is how CVE-2019-16884-style attacks begin).
func (mt *mounter) target(dest string, dir bool, resolve uint64) (int, error) {
	if !dir {
		return mt.root.mkfile(dest)
	}
	if resolve == 0 {
		return mt.root.mkdirAll(dest)
	}
	fd, err := mt.root.open(dest, unix.O_DIRECTORY, resolve)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	if fd, err = mt.root.mkdirAll(dest); err != nil {
		return -1, err
	}
	unix.Close(fd)
	return mt.root.open(dest, unix.O_DIRECTORY, resolve)
}

// fs mounts a filesystem of type typ (proc, tmpfs, devpts, mqueue, …).
func (mt *mounter) fs(source, dest, typ string, o mountOptions) error {
	var resolve uint64
	if typ == "proc" || typ == "sysfs" {
		resolve = unix.RESOLVE_NO_SYMLINKS
	}
	fd, err := mt.target(dest, true, resolve)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", typ, dest, err)
	}
	defer unix.Close(fd)
	flags := o.flags
	if flags&unix.MS_RDONLY != 0 && (typ == "tmpfs" || dest == "/dev") {
		flags &^= unix.MS_RDONLY
		mt.roLater = append(mt.roLater, dest)
	}
	// One sysfs superblock serves every mount of a network namespace: a
	// read-only mount made read-only the superblock too, for the pod's
	// privileged containers after it (and a host-network container's was
	// the host's, whose read-write state it kept). Read-only is therefore
	// a per-mount flag, set by a bind remount of this mount alone.
	sysfsRO := typ == "sysfs" && flags&unix.MS_RDONLY != 0
	if sysfsRO {
		flags &^= unix.MS_RDONLY
	}
	var label string
	if mt.spec.Linux != nil {
		label = mt.spec.Linux.MountLabel
	}
	if err := unix.Mount(source, procPath(fd), typ, flags, strings.Join(withMountLabel(o.data, typ, label), ",")); err != nil {
		return fmt.Errorf("mount %s on %s: %w", typ, dest, err)
	}
	if sysfsRO {
		if err := mt.remountReadOnly(dest); err != nil {
			return err
		}
	}
	return mt.finish(dest, typ, o)
}

// remountReadOnly makes the mount on dest read-only, that mount only
// (MS_BIND): its superblock, and every other mount of it, stay as they are.
func (mt *mounter) remountReadOnly(dest string) error {
	fd, err := mt.root.open(dest, unix.O_DIRECTORY, unix.RESOLVE_NO_SYMLINKS)
	if err != nil {
		return fmt.Errorf("remount %s read-only: %w", dest, err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dest, err)
	}
	flags := lockedFlags(st.Flags) | unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY
	if err := unix.Mount("", procPath(fd), "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", dest, err)
	}
	return nil
}

// sysfs mounts a sysfs, or, where the kernel refuses one (a net namespace
// this user namespace does not own), binds the host's /sys read-only as
// runc does.
func (mt *mounter) sysfs(source, dest string, o mountOptions) error {
	err := mt.fs(source, dest, "sysfs", o)
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	o.flags |= unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY
	o.data = nil
	return mt.bind("/sys", dest, o)
}

// bind bind-mounts the host path source on dest, then applies the flags a
// bind mount only takes on a remount.
func (mt *mounter) bind(source, dest string, o mountOptions) error {
	var st unix.Stat_t
	if err := unix.Stat(source, &st); err != nil {
		return fail(stepMount, source, fmt.Errorf("bind mount %s on %s: %w", source, dest, err))
	}
	fd, err := mt.target(dest, st.Mode&unix.S_IFMT == unix.S_IFDIR, 0)
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	err = unix.Mount(source, procPath(fd), "", unix.MS_BIND|(o.flags&unix.MS_REC), "")
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	if o.flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
		if err := mt.remountBind(dest, o.flags&^(unix.MS_BIND|unix.MS_REC)); err != nil {
			return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
		}
	}
	return mt.finish(dest, "bind", o)
}

// remountBind sets flags on the bind mount at dest.
func (mt *mounter) remountBind(dest string, flags uintptr) error {
	// Reopen: the fd used for the mount points at the covered mount point,
	// a fresh lookup lands on the root of the new mount.
	fd, err := mt.root.open(dest, 0, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return remountFd(fd, flags)
}

// remountFd bind-remounts the mount whose root fd is with flags, keeping
// the flags the kernel locked when it refuses to clear them.
func remountFd(fd int, flags uintptr) error {
	flags |= unix.MS_REMOUNT | unix.MS_BIND
	err := unix.Mount("", procPath(fd), "", flags, "")
	if !errors.Is(err, unix.EPERM) {
		return err
	}
	var st unix.Statfs_t
	if serr := unix.Fstatfs(fd, &st); serr != nil {
		return err
	}
	if locked := lockedFlags(st.Flags); locked&^flags != 0 {
		return unix.Mount("", procPath(fd), "", flags|locked, "")
	}
	return err
}

// finish applies a mount's propagation changes and recursive attributes.
func (mt *mounter) finish(dest, typ string, o mountOptions) error {
	if len(o.propagation) == 0 && o.attrSet == 0 && o.attrClr == 0 {
		return nil
	}
	fd, err := mt.root.open(dest, 0, 0)
	if err != nil {
		return fmt.Errorf("mount %s on %s: reopen: %w", typ, dest, err)
	}
	defer unix.Close(fd)
	for _, p := range o.propagation {
		if err := unix.Mount("", procPath(fd), "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", dest, err)
		}
	}
	if o.attrSet != 0 || o.attrClr != 0 {
		attr := unix.MountAttr{Attr_set: o.attrSet, Attr_clr: o.attrClr}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return fmt.Errorf("set recursive mount attributes of %s: %w", dest, err)
		}
	}
	return nil
}

// finalizeMounts, after pivot_root, makes read-only the mounts that were
// left writable for what went inside them.
func (mt *mounter) finalizeMounts() error {
	for _, dest := range mt.roLater {
		// We are inside the jail now: a path cannot leave the rootfs.
		var st unix.Statfs_t
		err := unix.Statfs(dest, &st)
		if err == nil {
			// A remount resets the per-mount flags it is not given.
			flags := lockedFlags(st.Flags) | unix.MS_REMOUNT | unix.MS_RDONLY
			err = unix.Mount("", dest, "", flags, "")
		}
		if err != nil {
			return fail(stepMount, dest, fmt.Errorf("remount %s read-only: %w", dest, err))
		}
	}
	return nil
}
