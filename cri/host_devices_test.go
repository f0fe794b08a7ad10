package cri

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/testutil"
)

// TestHostDevices lists the device nodes of a fake /dev: nodes at any
// depth with their numbers, mode and owner; not the container's own
// (pts, shm, mqueue, fd, console), not files, directories or symlinks.
func TestHostDevices(t *testing.T) {
	testutil.RequireRoot(t)
	dev := t.TempDir()
	mknod := func(name string, mode uint32, major, minor uint32) {
		t.Helper()
		p := filepath.Join(dev, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(p, mode, int(unix.Mkdev(major, minor))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, os.FileMode(mode&0o777)); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	mknod("kmsg", unix.S_IFCHR|0o644, 1, 11)
	mknod("loop0", unix.S_IFBLK|0o600, 7, 0)
	mknod("snd/timer", unix.S_IFCHR|0o660, 116, 33)
	if err := os.Chown(filepath.Join(dev, "snd/timer"), 0, 29); err != nil {
		t.Fatal(err)
	}
	mknod("console", unix.S_IFCHR|0o600, 5, 1)
	mknod("pts/0", unix.S_IFCHR|0o620, 136, 0)
	mknod("mqueue/x", unix.S_IFCHR|0o600, 1, 3)
	mknod(".udev/x", unix.S_IFCHR|0o600, 1, 3)
	mknod("fifo", unix.S_IFIFO|0o600, 0, 0)
	if err := os.WriteFile(filepath.Join(dev, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("kmsg", filepath.Join(dev, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dev, "shm"), 0o1777); err != nil {
		t.Fatal(err)
	}
	mknod("shm/x", unix.S_IFCHR|0o600, 1, 3)

	got, err := hostDevices(dev)
	if err != nil {
		t.Fatal(err)
	}
	type dv struct {
		path, typ    string
		major, minor int64
		mode         os.FileMode
		gid          uint32
	}
	var short []dv
	for _, d := range got {
		short = append(short, dv{d.Path, d.Type, d.Major, d.Minor, *d.FileMode, *d.GID})
	}
	want := []dv{
		{"/dev/kmsg", "c", 1, 11, 0o644, 0},
		{"/dev/loop0", "b", 7, 0, 0o600, 0},
		{"/dev/snd/timer", "c", 116, 33, 0o660, 29},
	}
	if !slices.Equal(short, want) {
		t.Errorf("hostDevices = %+v, want %+v", short, want)
	}
}

func TestHostDevicesMissingDir(t *testing.T) {
	if _, err := hostDevices(filepath.Join(t.TempDir(), "nodev")); err == nil {
		t.Fatal("hostDevices of a missing directory: no error")
	}
}
