package initproc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/mountinfo"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// setupContainer builds the container's filesystem and identity for role
// init, in runc's order. The constructor has already put this process in a
// new mount namespace, so every mount here lives and dies with it.
func setupContainer(cfg *initmsg.Config, pipe *os.File) error {
	spec := cfg.Spec
	rootPath, err := filepath.Abs(spec.Root.Path)
	if err != nil {
		return fail(stepRootfs, spec.Root.Path, err)
	}
	var propagation string
	if spec.Linux != nil {
		propagation = spec.Linux.RootfsPropagation
	}
	if err := prepareRoot(rootPath, propagation); err != nil {
		return err
	}
	if err := mountRootfs(rootPath, cfg.Rootfs); err != nil {
		return fail(stepRootfs, rootPath, err)
	}
	r, err := openRoot(rootPath)
	if err != nil {
		return fail(stepRootfs, rootPath, err)
	}
	mounts := specMounts(spec, cfg.DevShm)
	mt := &mounter{root: r, spec: spec, cgroupMounts: cfg.CgroupMounts}
	for _, m := range mounts {
		if err := mt.mount(m); err != nil {
			r.close()
			return err
		}
	}
	var devs []specs.LinuxDevice
	if spec.Linux != nil {
		devs = spec.Linux.Devices
	}
	err = createDevices(r, devs, needsDevSetup(mounts))
	r.close()
	if err != nil {
		return err
	}
	// As runc: after the mounts (a hook may add its own) and before
	// pivot_root, while the host's filesystem is still reachable.
	if err := beforePivot(pipe, cfg.Hooks, rootPath); err != nil {
		return err
	}
	if err := pivotRoot(rootPath); err != nil {
		return fail(stepPivotRoot, rootPath, err)
	}
	if err := afterPivot(spec, mt, propagation); err != nil {
		return err
	}
	return nil
}

// afterPivot finishes the rootfs from inside it: propagation of the new /,
// the working directory, read-only remounts, hostname, sysctls, then the
// read-only and masked paths (last, since /proc/sys is usually one of them).
func afterPivot(spec *specs.Spec, mt *mounter, propagation string) error {
	if flag, ok := propagationFlags[propagation]; ok {
		if err := unix.Mount("", "/", "", flag, ""); err != nil {
			return fail(stepPropagation, "/", fmt.Errorf("make / %s: %w", propagation, err))
		}
	}
	if cwd := spec.Process.Cwd; cwd != "" {
		// runc creates a missing cwd once inside the jail; Docker and
		// Kubernetes rely on it for an image WORKDIR that only names a
		// path. Before the read-only remount of /, so that works there
		// too; resolved in the root and made as the user (see ensureCwd).
		if err := ensureCwd(cwd, spec.Process.User); err != nil {
			return fail(stepCwd, cwd, err)
		}
	}
	if err := mt.finalizeMounts(); err != nil {
		return err
	}
	if spec.Root.Readonly {
		if err := remountPath("/", unix.MS_RDONLY); err != nil {
			return fail(stepRootfs, "/", fmt.Errorf("remount / read-only: %w", err))
		}
	}
	if err := setHostname(spec); err != nil {
		return err
	}
	if spec.Linux == nil {
		return nil
	}
	if err := writeSysctls(spec); err != nil {
		return err
	}
	for _, p := range spec.Linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return fail(stepReadonly, p, fmt.Errorf("make %s read-only: %w", p, err))
		}
	}
	for _, p := range spec.Linux.MaskedPaths {
		if err := maskPath(p); err != nil {
			return fail(stepMasked, p, fmt.Errorf("mask %s: %w", p, err))
		}
	}
	return nil
}

// prepareRoot makes the new mount namespace's propagation safe before any
// mount: the namespace starts as a copy of the host's, with shared mounts
// in the host's peer groups, so a mount made under one would appear on the
// host. By default everything becomes private; "slave"/"rslave" keeps
// receiving the host's mounts; "shared"/"rshared" is the spec asking for
// mounts to propagate back (Kubernetes' Bidirectional volumes), and is
// applied as asked, as runc does. Then the mount holding the rootfs is made
// private: pivot_root(2) refuses a new root whose parent mount is shared,
// and a rootfs mounted under a shared parent would propagate to the host.
func prepareRoot(rootPath, propagation string) error {
	flag := uintptr(unix.MS_PRIVATE | unix.MS_REC)
	if propagation != "" {
		f, ok := propagationFlags[propagation]
		if !ok {
			return fail(stepPropagation, rootPath, fmt.Errorf("unknown rootfs propagation %q", propagation))
		}
		if f&(unix.MS_SHARED|unix.MS_SLAVE) != 0 {
			flag = f
		}
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return fail(stepPropagation, "/", fmt.Errorf("set propagation of /: %w", err))
	}
	if flag&unix.MS_SHARED == 0 {
		return nil
	}
	mp, err := mountPointOf(rootPath)
	if err != nil {
		return fail(stepPropagation, rootPath, err)
	}
	if err := unix.Mount("", mp, "", unix.MS_PRIVATE, ""); err != nil {
		return fail(stepPropagation, mp, fmt.Errorf("make %s private: %w", mp, err))
	}
	return nil
}

// mountPointOf returns the mount point of the mount that holds p.
func mountPointOf(p string) (string, error) {
	best := ""
	err := scanOwnMounts(nil, func(m mountinfo.Mount) bool {
		mp := m.Mountpoint
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best = mp
		}
		return true
	})
	if err != nil {
		return "", err
	}
	if best == "" {
		return "", fmt.Errorf("no mount holds %s", p)
	}
	return best, nil
}

// mountRootfs mounts the overlay at rootPath, or bind-mounts rootPath on
// itself so that it is a mount point pivot_root can use.
func mountRootfs(rootPath string, fs initmsg.Rootfs) error {
	if len(fs.Lower) == 0 {
		st, err := os.Stat(rootPath)
		if err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("rootfs %s: %w", rootPath, unix.ENOTDIR)
		}
		if err := unix.Mount(rootPath, rootPath, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind mount rootfs %s: %w", rootPath, err)
		}
		return nil
	}
	return mountOverlayFlags(rootPath, fs, 0)
}

// mountOverlayFlags mounts overlayfs at rootPath with mount(2) flags.
// mount(2) takes at most one page of options; when many layers do not fit,
// it names them relative to their common parent directory, as containerd
// does, from a chdir there.
func mountOverlayFlags(rootPath string, fs initmsg.Rootfs, flags uintptr) error {
	dirs := append([]string{}, fs.Lower...)
	if fs.Upper != "" {
		dirs = append(dirs, fs.Upper, fs.Work)
	}
	for _, d := range dirs {
		if strings.ContainsAny(d, ":,") {
			return fmt.Errorf("overlay layer %q: ':' and ',' cannot be passed to overlayfs", d)
		}
	}
	data := overlayData(fs, "")
	if len(data) >= os.Getpagesize() {
		common := commonDir(dirs)
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("mount overlay on %s: %w", rootPath, err)
		}
		if err := unix.Chdir(common); err != nil {
			return fmt.Errorf("mount overlay on %s: chdir %s: %w", rootPath, common, err)
		}
		defer unix.Chdir(wd)
		data = overlayData(fs, common)
	}
	if len(data) >= os.Getpagesize() {
		// The kernel would silently cut the page and fail on a bad path.
		return fmt.Errorf("mount overlay on %s: %d bytes of layer paths exceed a page", rootPath, len(data))
	}
	if err := unix.Mount("overlay", rootPath, "overlay", flags, data); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", rootPath, err)
	}
	return nil
}

func overlayData(fs initmsg.Rootfs, base string) string {
	rel := func(p string) string {
		if base == "" {
			return p
		}
		r, err := filepath.Rel(base, p)
		if err != nil {
			return p
		}
		return r
	}
	lower := make([]string, len(fs.Lower))
	for i, l := range fs.Lower {
		lower[i] = rel(l)
	}
	data := "lowerdir=" + strings.Join(lower, ":")
	if fs.Upper != "" {
		data += ",upperdir=" + rel(fs.Upper) + ",workdir=" + rel(fs.Work)
	}
	return data
}

// commonDir returns the deepest directory that holds every path in dirs.
func commonDir(dirs []string) string {
	common := filepath.Dir(filepath.Clean(dirs[0]))
	for _, d := range dirs[1:] {
		for common != "/" && !strings.HasPrefix(filepath.Clean(d), common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// pivotRoot makes rootPath the root, the runc way: pivot_root(".", ".")
// stacks the old root on top of the new one at "/", and a lazy unmount of
// "." (the old root, after fchdir to it) drops it and every host mount
// under it from this namespace.
func pivotRoot(rootPath string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootPath, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open new root %s: %w", rootPath, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", rootPath, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		if errors.Is(err, unix.EINVAL) && onInitramfs() {
			return moveRoot()
		}
		return fmt.Errorf("pivot_root %s: %w", rootPath, err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir old root: %w", err)
	}
	// Unmounting must not propagate to the host's copies of these mounts
	// (when "/" was left shared on purpose).
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// onInitramfs reports whether "/" is the initial ramfs/tmpfs "rootfs",
// which can never be unmounted, so pivot_root(2) fails with EINVAL on it
// (a host booted without switch_root, such as some minimal VMs).
func onInitramfs() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC
}

// moveRoot is the fallback when pivot_root(2) cannot be used because the
// host root is initramfs: move the rootfs over "/" and chroot into it. The
// host mounts stay underneath but are out of reach of the process's root.
// Preconditions: the working directory is the new root.
func moveRoot() error {
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// remountPath bind-remounts the mount at p with flags added to the ones it
// has (a remount resets the per-mount flags it is not given).
func remountPath(p string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return err
	}
	flags |= lockedFlags(st.Flags) | unix.MS_REMOUNT | unix.MS_BIND
	return unix.Mount("", p, "", flags, "")
}

// readonlyPath makes p, inside the jail, a read-only bind of itself;
// a path the image does not have is skipped.
func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return remountPath(p, unix.MS_RDONLY|unix.MS_REC)
}

// maskPath hides p: /dev/null bound over a file, an empty read-only tmpfs
// over a directory; a path the image does not have is skipped.
func maskPath(p string) error {
	err := unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
	if errors.Is(err, unix.ENOTDIR) {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
	}
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}
