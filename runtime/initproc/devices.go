package initproc

import (
	"errors"
	"fmt"
	"os"
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are the nodes every container's /dev has (the OCI
// runtime-spec's "default devices"); a spec device with the same path
// replaces one.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devSymlinks are the links of a container's /dev, as runc makes them.
var devSymlinks = [][2]string{
	{"/proc/self/fd", "fd"},
	{"/proc/self/fd/0", "stdin"},
	{"/proc/self/fd/1", "stdout"},
	{"/proc/self/fd/2", "stderr"},
}

// needsDevSetup reports whether init populates /dev: always, except when
// the spec bind-mounts the host's (or some other) /dev.
func needsDevSetup(mounts []specs.Mount) bool {
	for _, m := range mounts {
		if cleanIn(m.Destination) != "/dev" {
			continue
		}
		o, _ := parseMountOptions(m.Options)
		return o.flags&unix.MS_BIND == 0 && m.Type != "bind"
	}
	return true
}

// createDevices makes the default device nodes and /dev symlinks (when
// setupDev) and the spec's devices inside the rootfs.
func createDevices(r *root, devs []specs.LinuxDevice, setupDev bool) error {
	var all []specs.LinuxDevice
	if setupDev {
		for _, d := range defaultDevices {
			if !hasDevice(devs, d.Path) {
				all = append(all, d)
			}
		}
	}
	all = append(all, devs...)
	for _, d := range all {
		if err := createDevice(r, d); err != nil {
			return fail(stepDevices, d.Path, fmt.Errorf("create device %s: %w", d.Path, err))
		}
	}
	if setupDev {
		if err := devLinks(r); err != nil {
			return fail(stepDevices, "/dev", err)
		}
	}
	return nil
}

func hasDevice(devs []specs.LinuxDevice, p string) bool {
	for _, d := range devs {
		if cleanIn(d.Path) == p {
			return true
		}
	}
	return false
}

// createDevice makes one node with mknodat(2) relative to its directory's
// fd inside the rootfs. Where mknod is not allowed (a user namespace), it
// bind-mounts the host's node of the same path instead, as runc does.
func createDevice(r *root, d specs.LinuxDevice) error {
	var typ uint32
	switch d.Type {
	case "c", "u":
		typ = unix.S_IFCHR
	case "b":
		typ = unix.S_IFBLK
	case "p":
		typ = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(*d.FileMode & os.ModePerm)
	}
	var uid, gid int
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	dfd, base, err := r.parentDir(d.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	// Replace whatever the image put there: a regular file named null is
	// not /dev/null.
	if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	err = unix.Mknodat(dfd, base, typ|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	if errors.Is(err, unix.EPERM) && typ != unix.S_IFIFO {
		return bindDevice(r, d.Path)
	}
	if err != nil {
		return err
	}
	return unix.Fchownat(dfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// bindDevice bind-mounts the host node at p onto an empty file at p.
func bindDevice(r *root, p string) error {
	fd, err := r.mkfile(p)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Mount(p, procPath(fd), "", unix.MS_BIND, "")
}

// devLinks makes /dev/fd, stdin, stdout, stderr, core (where the host has
// /proc/kcore) and ptmx → pts/ptmx, the devpts instance's multiplexer.
func devLinks(r *root) error {
	links := devSymlinks
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links[:len(links):len(links)], [2]string{"/proc/kcore", "core"})
	}
	links = append(links[:len(links):len(links)], [2]string{"pts/ptmx", "ptmx"})
	for _, l := range links {
		dfd, base, err := r.parentDir(path.Join("/dev", l[1]))
		if err != nil {
			return fmt.Errorf("create /dev/%s: %w", l[1], err)
		}
		if base == "ptmx" {
			if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				unix.Close(dfd)
				return fmt.Errorf("remove /dev/ptmx: %w", err)
			}
		}
		err = unix.Symlinkat(l[0], dfd, base)
		unix.Close(dfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s to %s: %w", l[1], l[0], err)
		}
	}
	return nil
}
