package harness

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns` keeps named network namespaces. The first
// `ip netns add` on a host bind-mounts the directory onto itself (shared,
// so that the names reach other mount namespaces), and no `ip netns del`
// undoes that: a test whose add made that mount removes it again.
const netnsDir = "/run/netns"

// addNetns makes the named network namespace with `ip netns add` and
// deletes it when the test ends. If the directory was not a mount point
// before, the cleanup unmounts it once it is empty; a namespace another
// test still has there keeps it mounted (EBUSY), and a mount that was there
// before is never touched.
func addNetns(t testing.TB, name string) {
	t.Helper()
	wasMounted := isMountRoot(netnsDir)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
			return
		}
		if !wasMounted {
			releaseNetnsDir(t)
		}
	})
}

// releaseNetnsDir unmounts netnsDir's self-bind if nothing is left in it.
func releaseNetnsDir(t testing.TB) {
	left, err := os.ReadDir(netnsDir)
	if err != nil || len(left) > 0 || !isMountRoot(netnsDir) {
		return
	}
	// Not MNT_DETACH: a namespace bound there meanwhile makes it EBUSY.
	if err := unix.Unmount(netnsDir, 0); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EINVAL) {
		t.Errorf("unmount %s: %v", netnsDir, err)
	}
}

// isMountRoot reports whether path is the root of a mount.
func isMountRoot(path string) bool {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, 0, &st); err != nil {
		return false
	}
	return st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}
