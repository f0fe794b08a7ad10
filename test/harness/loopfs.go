package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/crib-runtime/crib/internal/testutil"
)

// LoopFS mounts a fresh ext4 filesystem of size bytes at dir (made if
// missing), backed by a sparse file through a loop device, so that a test
// can fill a disk without touching the host's. No blocks are reserved for
// root: the daemon runs as root and would otherwise write on where the
// test's filler stopped. Blocks are a page (4 KiB, also on a small
// filesystem): once it is full, a write that crosses into a new block is
// cut short where the last block ends, as on a real disk. Cleanup unmounts
// it and detaches the device, also when the test failed.
func LoopFS(t testing.TB, dir string, size int64) {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			testutil.SkipOrFail(t, fmt.Sprintf("a loop-mounted filesystem needs %s (e2fsprogs, util-linux): %v", tool, err))
		}
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", img, err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v\n%s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		// Lazily, if something still holds it (a shim a failed test
		// left): the device then goes with the last user, as detaching
		// a busy device sets its autoclear flag.
		if err := syscall.Unmount(dir, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Logf("unmount %s: %v; detaching it", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(dev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", dev, dir, err)
	}
}

// Fill writes a file at path until the filesystem holding it is full (the
// write fails with ENOSPC) and returns how many bytes it took. Removing
// the file frees the space again.
func Fill(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("fill %s: %w", path, err)
	}
	defer f.Close()
	var n int64
	// Large writes first, then small ones for the last blocks.
	for _, chunk := range []int{1 << 20, 4 << 10, 512} {
		buf := make([]byte, chunk)
		for {
			w, err := f.Write(buf)
			n += int64(w)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				return n, fmt.Errorf("fill %s: %w", path, err)
			}
		}
	}
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		return n, fmt.Errorf("fill %s: %w", path, err)
	}
	return n, nil
}
