// Package hostfs reads what the metrics report about processes and
// devices from the host's /proc and /sys: open descriptors and sockets of
// processes, block device names, the capacity of a filesystem.
//
// It imports only the standard library and x/sys. Internal to crib; no API
// compatibility promised.
package hostfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CountFDs returns how many descriptors the processes pids have open under
// proc (normally /proc) and how many of those are sockets, as cAdvisor
// counts them. A process that exits while it is read counts what was read.
func CountFDs(proc string, pids []int) (fds, sockets uint64) {
	for _, pid := range pids {
		dir := filepath.Join(proc, strconv.Itoa(pid), "fd")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or a kernel thread we may not look into
		}
		for _, e := range ents {
			fds++
			if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}

// OpenFilesSoftLimit returns the soft RLIMIT_NOFILE of process pid from
// proc (normally /proc): the one ulimit cAdvisor reports. ok is false when
// the process is gone or its limit is unlimited.
func OpenFilesSoftLimit(proc string, pid int) (soft uint64, ok bool) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "limits"))
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), "Max open files")
		if !found {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		return v, err == nil
	}
	return 0, false
}

// DeviceName returns the device node of the block device major:minor as
// sysfs (normally /sys) names it, "/dev/sda1", or "major:minor" where sysfs
// knows no block device of that number.
func DeviceName(sys string, major, minor uint32) string {
	num := fmt.Sprintf("%d:%d", major, minor)
	b, err := os.ReadFile(filepath.Join(sys, "dev", "block", num, "uevent"))
	if err != nil {
		return num
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if name, ok := strings.CutPrefix(sc.Text(), "DEVNAME="); ok && name != "" {
			return "/dev/" + name
		}
	}
	return num
}

// Filesystem is the filesystem a path lives on.
type Filesystem struct {
	// Device names it as DeviceName does: the block device it is on, or
	// "major:minor" for a filesystem without one (tmpfs, overlay).
	Device string
	// CapacityBytes is its size; Inodes and InodesFree its inode counts.
	CapacityBytes, Inodes, InodesFree uint64
}

// FilesystemOf returns the filesystem holding path, its device named from
// sys (normally /sys).
func FilesystemOf(sys, path string) (Filesystem, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Filesystem{}, fmt.Errorf("stat %s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return Filesystem{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	return Filesystem{
		Device:        DeviceName(sys, unix.Major(st.Dev), unix.Minor(st.Dev)),
		CapacityBytes: fs.Blocks * uint64(fs.Bsize),
		Inodes:        fs.Files,
		InodesFree:    fs.Ffree,
	}, nil
}

// RootOnly refuses a path that someone other than root could write, or
// replace in its directory: for files that steer what crib does as root
// (CDI specs, a mountinfo given in place of the kernel's).
func RootOnly(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if st.Uid != 0 || st.Mode&0o022 != 0 {
			return fmt.Errorf("%s: owned by uid %d, mode %#o: only root may be able to write it and its directory", p, st.Uid, st.Mode&0o7777)
		}
	}
	return nil
}
