package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostDevSkip are the entries of the host's /dev a privileged container
// does not get as nodes, by base name at any depth (the list containerd's
// and runc's HostDevices skip): pts, shm and mqueue are the container's
// own mounts, fd a link to its own /proc, console its own terminal, the
// rest container managers' private state.
var hostDevSkip = map[string]bool{
	"pts": true, "shm": true, "fd": true, "mqueue": true, "console": true,
	".lxc": true, ".lxd-mounts": true, ".udev": true,
}

// hostDevices lists the character and block device nodes below dev (the
// host's /dev) as spec devices at the same path under /dev, for a
// privileged container: the CRI gives it the host's devices, and its device
// cgroup already allows every one. Symlinks are not followed; a node that
// vanishes during the walk is left out.
func hostDevices(dev string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dev, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dev {
				return nil
			}
			return err
		}
		if p == dev {
			return nil
		}
		if hostDevSkip[d.Name()] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no device numbers", p)
		}
		rel, err := filepath.Rel(dev, p)
		if err != nil {
			return err
		}
		typ := "b"
		if info.Mode()&fs.ModeCharDevice != 0 {
			typ = "c"
		}
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{
			Path: path.Join("/dev", filepath.ToSlash(rel)), Type: typ,
			Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
			FileMode: &mode, UID: &uid, GID: &gid,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices in %s: %w", dev, err)
	}
	return out, nil
}
