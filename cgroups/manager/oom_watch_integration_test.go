package manager_test

import (
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
