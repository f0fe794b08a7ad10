package cgroup2_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// inotifyInstances counts this process's inotify descriptors.
func inotifyInstances(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); l == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// TestWatchOOMSharesOneInotify: a manager's OOM watches share one
// inotify instance, whatever their number: root has 128 for the whole
// host (fs.inotify.max_user_instances), and one per container made
// container creation fail past about a hundred. Each watch still hears
// only its own cgroup, and none after its stop or its cgroup's removal.
func TestWatchOOMSharesOneInotify(t *testing.T) {
	tr, m := newFake(t, all...)
	before := inotifyInstances(t)
	cgs := []string{"/p/a", "/p/b", "/p/c", "/p/d", "/p/e"}
	seen := map[string]chan struct{}{}
	stops := map[string]func(){}
	for _, c := range cgs {
		if err := m.Create(c, nil); err != nil {
			t.Fatal(err)
		}
		tr.Write(tr.Unified, c, "memory.events", "oom 0\noom_kill 0\n")
		ch := make(chan struct{}, 4)
		stop, err := m.WatchOOM(c, func() { ch <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		seen[c], stops[c] = ch, stop
	}
	if got := inotifyInstances(t) - before; got != 1 {
		t.Errorf("%d watches hold %d inotify instances, want 1", len(cgs), got)
	}
	tr.Write(tr.Unified, "/p/b", "memory.events", "oom 1\noom_kill 1\n")
	select {
	case <-seen["/p/b"]:
	case <-time.After(5 * time.Second):
		t.Fatal("the OOM kill in /p/b was not heard")
	}
	stops["/p/c"]()
	tr.Write(tr.Unified, "/p/c", "memory.events", "oom 1\noom_kill 1\n")
	if err := m.Remove("/p/d"); err != nil {
		t.Fatal(err)
	}
	tr.Write(tr.Unified, "/p/e", "memory.events", "oom 1\noom_kill 1\n")
	select {
	case <-seen["/p/e"]:
	case <-time.After(5 * time.Second):
		t.Fatal("the OOM kill in /p/e was not heard")
	}
	for _, c := range []string{"/p/a", "/p/b", "/p/c", "/p/d"} {
		if len(seen[c]) != 0 {
			t.Errorf("%s heard an OOM kill not its own, or after its stop", c)
		}
	}
	for _, stop := range stops {
		stop()
	}
}
