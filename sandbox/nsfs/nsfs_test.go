package nsfs

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/testutil"
)

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestPinUnpin(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "ns")
	hostNet := inode(t, "/proc/self/ns/net")

	paths, err := Pin(dir, Net, IPC, UTS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range paths {
			Unpin(p)
		}
	})
	if got := testutil.MountsUnder(t, dir); got != 3 {
		t.Errorf("mounts under %s = %d, want 3", dir, got)
	}
	for _, k := range []Kind{Net, IPC, UTS} {
		p := paths[k]
		if p != filepath.Join(dir, string(k)) || !Pinned(p) {
			t.Fatalf("%s: path %q pinned=%v", k, p, Pinned(p))
		}
		if inode(t, p) == inode(t, "/proc/self/ns/"+string(k)) {
			t.Errorf("%s: pinned namespace is the host's", k)
		}
	}
	// The main thread (whose view /proc/self is) stays in the host's
	// namespace: Pin never unshares on it.
	if got := inode(t, "/proc/self/ns/net"); got != hostNet {
		t.Errorf("/proc/self/ns/net moved to %d, want the host's %d", got, hostNet)
	}
	// Every goroutine of the test, including many scheduled on threads
	// the runtime reused after Pin, is still in the host's namespace.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if got := inode(t, "/proc/thread-self/ns/net"); got != hostNet {
				t.Errorf("a goroutine runs in net namespace %d, want the host's %d", got, hostNet)
			}
		})
	}
	wg.Wait()

	// Do joins the pinned namespace: it has only a loopback interface.
	if err := Do(paths[Net], Net, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		if len(ifs) != 1 || ifs[0].Name != "lo" {
			t.Errorf("interfaces in the pinned namespace: %v", ifs)
		}
		if got := inode(t, "/proc/thread-self/ns/net"); got != inode(t, paths[Net]) {
			t.Errorf("Do ran in namespace %d, want %d", got, inode(t, paths[Net]))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := inode(t, "/proc/thread-self/ns/net"); got != hostNet {
		t.Errorf("after Do the test runs in net namespace %d, want the host's", got)
	}

	for k, p := range paths {
		if err := Unpin(p); err != nil {
			t.Fatalf("Unpin %s: %v", k, err)
		}
		if err := Unpin(p); err != nil {
			t.Fatalf("second Unpin %s: %v", k, err)
		}
		if Pinned(p) {
			t.Errorf("%s still pinned", p)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists: %v", p, err)
		}
	}
	if got := testutil.MountsUnder(t, dir); got != 0 {
		t.Errorf("mounts left under %s: %d", dir, got)
	}
}

func TestPinExistingPathFails(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ipc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	paths, err := Pin(dir, Net, IPC)
	if err == nil {
		for _, p := range paths {
			Unpin(p)
		}
		t.Fatal("Pin over an existing file succeeded")
	}
	if got := testutil.MountsUnder(t, dir); got != 0 {
		t.Errorf("mounts left under %s: %d", dir, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "net")); !os.IsNotExist(err) {
		t.Errorf("net pin file left after failure: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ipc")); err != nil {
		t.Errorf("the caller's file was removed: %v", err)
	}
}

func TestPinnedAndUnpinPlainFiles(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	if Pinned(plain) || Pinned(filepath.Join(dir, "missing")) {
		t.Fatal("plain or missing file reported as pinned")
	}
	if !Pinned("/proc/self/ns/net") {
		t.Fatal("/proc/self/ns/net is not reported as nsfs")
	}
	if err := Unpin(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("Unpin of a missing file: %v", err)
	}
	if _, err := Pin(dir, Kind("mnt")); err == nil {
		t.Fatal("Pin of a mount namespace succeeded")
	}
}

// TestPinUser pins a user namespace with the others owned by it: the maps
// are those asked for, and the net namespace's owner is the pinned user
// namespace (NS_GET_USERNS), not the host's.
func TestPinUser(t *testing.T) {
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "ns")
	maps := UserMaps{UIDs: []IDMap{{0, 100000, 65536}}, GIDs: []IDMap{{0, 200000, 1000}}}
	paths, err := PinUser(dir, []string{"cat"}, maps, Net, IPC, UTS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range paths {
			Unpin(p)
		}
	})
	for _, k := range []Kind{User, Net, IPC, UTS} {
		if !Pinned(paths[k]) {
			t.Fatalf("%s not pinned at %q", k, paths[k])
		}
	}
	f, err := os.Open(paths[Net])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	owner, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != inode(t, paths[User]) {
		t.Errorf("net namespace owner inode %d, want the pinned user namespace %d", st.Ino, inode(t, paths[User]))
	}
	if st.Ino == inode(t, "/proc/self/ns/user") {
		t.Error("net namespace is owned by the host's user namespace")
	}
	// The maps as a process that joins sees them.
	if err := Do(paths[Net], Net, func() error { return nil }); err != nil {
		t.Fatalf("host root cannot join the pod's net namespace: %v", err)
	}
	uidMap, err := userMap(paths[User], "uid_map")
	if err != nil {
		t.Fatal(err)
	}
	if want := "0 100000 65536"; uidMap != want {
		t.Errorf("uid_map %q, want %q", uidMap, want)
	}
	if gidMap, _ := userMap(paths[User], "gid_map"); gidMap != "0 200000 1000" {
		t.Errorf("gid_map %q, want %q", gidMap, "0 200000 1000")
	}
	if _, err := PinUser(filepath.Join(t.TempDir(), "ns"), []string{"cat"}, UserMaps{}, Net); err == nil {
		t.Error("PinUser without maps succeeded")
	}
}

// userMap reads a map file of the user namespace pinned at path, as a
// process inside it (nsenter: a Go test cannot join a user namespace).
func userMap(path, file string) (string, error) {
	out, err := exec.Command("nsenter", "--user="+path, "cat", "/proc/self/"+file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nsenter: %v: %s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " "), nil
}
