package hostfs_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/hostfs"
)

func TestCountFDs(t *testing.T) {
	me := os.Getpid()
	fds0, socks0 := hostfs.CountFDs("/proc", []int{me})
	if fds0 == 0 {
		t.Fatal("no descriptors counted for the test process")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fds, socks := hostfs.CountFDs("/proc", []int{me})
	if fds != fds0+2 || socks != socks0+1 {
		t.Errorf("after a socket and a file: %d fds, %d sockets; before %d, %d", fds, socks, fds0, socks0)
	}
	// A pid that does not exist counts nothing.
	if fds, socks := hostfs.CountFDs("/proc", []int{me, 1 << 30}); fds != fds0+2 || socks != socks0+1 {
		t.Errorf("with a missing pid: %d, %d", fds, socks)
	}
}

func TestOpenFilesSoftLimit(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got, ok := hostfs.OpenFilesSoftLimit("/proc", os.Getpid()); !ok || got != lim.Cur {
		t.Errorf("OpenFilesSoftLimit = %d, %v; getrlimit says %d", got, ok, lim.Cur)
	}
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "7", "limits"), []byte("Limit Soft Limit Hard Limit Units\nMax open files unlimited unlimited files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := hostfs.OpenFilesSoftLimit(proc, 7); ok {
		t.Error("unlimited reported as a number")
	}
	if _, ok := hostfs.OpenFilesSoftLimit(proc, 8); ok {
		t.Error("missing process reported")
	}
}

func TestDeviceName(t *testing.T) {
	sys := t.TempDir()
	dir := filepath.Join(sys, "dev", "block", "8:1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte("MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := hostfs.DeviceName(sys, 8, 1); got != "/dev/sda1" {
		t.Errorf("DeviceName(8:1) = %q", got)
	}
	if got := hostfs.DeviceName(sys, 0, 45); got != "0:45" {
		t.Errorf("DeviceName(0:45) = %q", got)
	}
}

func TestFilesystemOf(t *testing.T) {
	dir := t.TempDir()
	fs, err := hostfs.FilesystemOf("/sys", dir)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if fs.CapacityBytes != st.Blocks*uint64(st.Bsize) || fs.Inodes != st.Files || fs.Device == "" {
		t.Errorf("FilesystemOf = %+v; statfs %+v", fs, st)
	}
	if _, err := hostfs.FilesystemOf("/sys", filepath.Join(dir, "missing")); err == nil {
		t.Error("FilesystemOf(missing) succeeded")
	}
}
