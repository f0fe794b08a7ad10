package testutil

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
)

// `ip netns add` keeps named network namespaces in netnsDir; the first add
// on a host makes the directory and bind-mounts it onto itself (shared, so
// that the names reach other mount namespaces), and no `ip netns del`
// undoes either. netnsMarker records that tests made them ("mount", or
// "dir" when the directory was missing too), so that the test deleting the
// last namespace there undoes them; a mount that was there before the
// tests is never touched. Every test process takes netnsLock around its
// add and its delete, so that one's check and another's add cannot
// interleave.
const (
	netnsDir    = "/run/netns"
	netnsMarker = "/run/crib-tests-netns"
	netnsLock   = "/run"
)

// AddNetns makes the named network namespace with `ip netns add`, loopback
// up, and deletes it when the test ends, with the /run/netns mount the
// tests' first add made once no namespace is left there.
func AddNetns(t testing.TB, name string) {
	t.Helper()
	withNetnsLock(t, func() {
		if !isMountPoint(t, netnsDir) {
			what := "mount"
			if _, err := os.Stat(netnsDir); errors.Is(err, os.ErrNotExist) {
				what = "dir"
			}
			if _, err := os.Stat(netnsMarker); errors.Is(err, os.ErrNotExist) {
				if err := os.WriteFile(netnsMarker, []byte(what), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
		}
	})
	t.Cleanup(func() {
		withNetnsLock(t, func() {
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", name, err, out)
				return
			}
			releaseNetnsDir(t)
		})
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v\n%s", name, err, out)
	}
}

// releaseNetnsDir undoes what netnsMarker records once netnsDir is empty.
func releaseNetnsDir(t testing.TB) {
	made, err := os.ReadFile(netnsMarker)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Error(err)
		return
	}
	if left, err := os.ReadDir(netnsDir); err != nil || len(left) > 0 {
		return
	}
	if isMountPoint(t, netnsDir) {
		if err := syscall.Unmount(netnsDir, 0); err != nil {
			t.Errorf("unmount %s: %v", netnsDir, err)
			return
		}
	}
	if string(made) == "dir" {
		if err := os.Remove(netnsDir); err != nil {
			t.Error(err)
		}
	}
	if err := os.Remove(netnsMarker); err != nil {
		t.Error(err)
	}
}

// withNetnsLock runs f holding an exclusive flock on netnsLock, a
// directory every host has, so that the lock leaves no file behind.
func withNetnsLock(t testing.TB, f func()) {
	t.Helper()
	fd, err := syscall.Open(netnsLock, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", netnsLock, err)
	}
	defer syscall.Close(fd)
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		t.Fatalf("lock %s: %v", netnsLock, err)
	}
	defer syscall.Flock(fd, syscall.LOCK_UN)
	f()
}

// isMountPoint reports whether a mount sits at dir in this mount namespace.
func isMountPoint(t testing.TB, dir string) bool {
	t.Helper()
	return slices.Contains(mountPoints(t), dir)
}
