package memrelease

import (
	"sync/atomic"
	"testing"
	"time"
)

// A burst of work pays for one release, after it ends; more work later
// pays for another.
func TestOneReleasePerBurst(t *testing.T) {
	var released atomic.Int32
	r := New(200 * time.Millisecond)
	r.release = func() { released.Add(1) }
	for range 5 {
		r.Worked()
	}
	if n := released.Load(); n != 0 {
		t.Fatalf("released %d times during the burst", n)
	}
	waitFor(t, func() bool { return released.Load() == 1 })
	time.Sleep(600 * time.Millisecond) // three quiet periods with no work
	if n := released.Load(); n != 1 {
		t.Fatalf("released %d times after one burst, want 1", n)
	}
	r.Worked()
	waitFor(t, func() bool { return released.Load() == 2 })
}

// Work keeps postponing the release: it comes a quiet period after the
// last piece of work, not the first.
func TestWorkPostponesRelease(t *testing.T) {
	var released atomic.Int32
	r := New(time.Hour)
	r.release = func() { released.Add(1) }
	r.Worked()
	r.mu.Lock()
	first := r.timer
	r.mu.Unlock()
	r.Worked()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timer != first {
		t.Fatal("a second piece of work made a second timer")
	}
	if released.Load() != 0 {
		t.Fatal("released before the quiet period")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
