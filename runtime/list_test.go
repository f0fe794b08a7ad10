package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/crib-runtime/crib/runtime/shimapi"
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
	got := map[string]shimapi.Status{}
	for _, st := range all {
		got[st.ID] = st.Status
	}
	if got[running.ID] != shimapi.Status_RUNNING || got[wedged.ID] != shimapi.Status_UNKNOWN || len(got) != 2 {
		t.Fatalf("states %v: want %s RUNNING and %s (wedged shim) UNKNOWN", got, running.ID, wedged.ID)
	}
}
