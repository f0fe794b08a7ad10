package manager_test

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/cgroups"
)

// TestHostOOMWatch: an OOM kill is heard while it happens, so that it is
// known even when the cgroup is removed as soon as it is empty (what
// systemd does to a scope's), before anyone could read OOMKills.
func TestHostOOMWatch(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	c := root + "/crib-oom.scope"
	if err := m.Create(c, &cgroups.Resources{MemoryMaxBytes: ptr[int64](32 << 20), MemorySwapMaxBytes: ptr[int64](0)}); err != nil {
		t.Fatal(err)
	}
	w, ok := m.(cgroups.OOMWatcher)
	if !ok {
		t.Fatalf("%T does not watch OOM kills", m)
	}
	seen := make(chan struct{}, 16)
	stop, err := w.WatchOOM(c, func() { seen <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := startHelper(t, m, c, 128)
	if err := h.cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper allocating 128 MiB under 32 MiB: %v; want killed", err)
	}
	// Heard while the cgroup is still there. A removal within the kernel's
	// 10 ms notification interval (cgroup_file_notify) can drop the event
	// altogether, so the cgroup goes only after.
	select {
	case <-seen:
	case <-time.After(5 * time.Second):
		t.Fatal("the OOM kill was not heard")
	}
	if err := m.Remove(c); err != nil {
		t.Fatal(err)
	}
	// A cgroup without OOM: nothing heard, and its removal ends the watch.
	quiet := root + "/crib-quiet.scope"
	if err := m.Create(quiet, &cgroups.Resources{MemoryMaxBytes: ptr[int64](32 << 20)}); err != nil {
		t.Fatal(err)
	}
	calm := make(chan struct{}, 1)
	stop2, err := w.WatchOOM(quiet, func() { calm <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	if err := m.Remove(quiet); err != nil {
		t.Fatal(err)
	}
	select {
	case <-calm:
		t.Error("an OOM was heard in a cgroup that had none")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := w.WatchOOM(root+"/missing", func() {}); err == nil {
		t.Error("watched a cgroup that does not exist")
	}
}

// TestHostOOMWatchesShareOneInotify: on cgroup v2 the watches of one
// manager (a shim's, for all its containers) share one inotify instance,
// of which root has 128 on the whole host, and each kill reaches the
// watch of its own cgroup only. The instance closes with the last watch.
func TestHostOOMWatchesShareOneInotify(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	w := m.(cgroups.OOMWatcher)
	before := inotifyFds(t)
	names := []string{"crib-a.scope", "crib-b.scope", "crib-c.scope"}
	seen := make([]chan struct{}, len(names))
	var stops []func()
	for i, name := range names {
		if err := m.Create(root+"/"+name, &cgroups.Resources{MemoryMaxBytes: ptr[int64](32 << 20), MemorySwapMaxBytes: ptr[int64](0)}); err != nil {
			t.Fatal(err)
		}
		seen[i] = make(chan struct{}, 16)
		stop, err := w.WatchOOM(root+"/"+name, func() { seen[i] <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		stops = append(stops, stop)
	}
	want := before // cgroup v1 watches through an eventfd each
	if m.Mode() == cgroups.ModeUnified {
		want++
	}
	if got := inotifyFds(t); got != want {
		t.Fatalf("%d inotify instances with %d watches, want %d", got, len(names), want)
	}
	h := startHelper(t, m, root+"/"+names[1], 128)
	if err := h.cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("helper allocating 128 MiB under 32 MiB: %v; want killed", err)
	}
	select {
	case <-seen[1]:
	case <-time.After(5 * time.Second):
		t.Fatal("the OOM kill in crib-b was not heard")
	}
	for _, i := range []int{0, 2} {
		select {
		case <-seen[i]:
			t.Errorf("an OOM kill was heard in %s, which had none", names[i])
		case <-time.After(100 * time.Millisecond):
		}
	}
	for _, stop := range stops {
		stop()
		stop() // twice: harmless
	}
	if got := inotifyFds(t); got != before {
		t.Fatalf("%d inotify instances after every watch stopped, want %d", got, before)
	}
	// And its reader has returned with it.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		if !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*oomWatches).read") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the inotify reader still runs after its instance closed")
		}
	}
}

// inotifyFds counts this process's inotify instances.
func inotifyFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}
