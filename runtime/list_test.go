package runtime

import (
	"context"
	"testing"
	"time"
)

// TestListSkipsWedgedShim: a shim that never answers List (wedged) costs
// List listTimeout, not for ever: its containers are listed Unknown and
// the other pods' containers with their real states.
func TestListSkipsWedgedShim(t *testing.T) {
	defer func(d time.Duration) { listTimeout = d }(listTimeout)
	listTimeout = 100 * time.Millisecond
	ok, stuck := newFakeShim(), newFakeShim()
	m, err := Open(t.TempDir(), shims{"pod": ok, "stuck": stuck})
	if err != nil {
		t.Fatal(err)
	}
	running := startNew(t, m, "running")
	wedged := newContainer("stuck", "wedged")
	create(t, m, wedged)
	if _, err := m.Start(context.Background(), wedged.ID); err != nil {
		t.Fatal(err)
	}
	stuck.mu.Lock()
	stuck.wedged = true
	stuck.mu.Unlock()
	done := make(chan []State, 1)
	go func() {
		// No deadline, as at the daemon's start.
		all, err := m.List(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- all
	}()
	var all []State
	select {
	case all = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("List waits for a wedged shim")
	}
	got := map[string]Status{}
	for _, st := range all {
		got[st.ID] = st.Status
	}
	if got[running.ID] != StatusRunning || got[wedged.ID] != StatusUnknown || len(got) != 2 {
		t.Fatalf("states %v: want %s RUNNING and %s (wedged shim) UNKNOWN", got, running.ID, wedged.ID)
	}
}

// TestRemoveForgetsEverything: every per-container map of the Manager
// (records, guards, names, layer usage, exits seen) loses the container's
// entry when it is removed, so memory follows the containers that exist.
func TestRemoveForgetsEverything(t *testing.T) {
	m, _, _ := newWorld(t)
	ctx := context.Background()
	c := startNew(t, m, "c")
	if _, _, err := m.WritableUsage(c.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	sizes := func() []int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return []int{len(m.records), len(m.guards), len(m.names), len(m.usage), len(m.exited)}
	}
	if got := sizes(); got[3] != 1 || got[4] != 1 {
		t.Fatalf("sizes %v: the usage and exit maps were not filled, the test proves nothing", got)
	}
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	for i, n := range sizes() {
		if n != 0 {
			t.Fatalf("map %d of records, guards, names, usage, exited keeps %d entries after Remove", i, n)
		}
	}
}
