// Package memrelease hands a process's free heap back to the kernel once a
// burst of work is over.
//
// A burst of pod starts grows the Go heap (spec encoding, CNI results,
// launch messages); the garbage is collected, but the runtime's background
// scavenger returns the freed pages slowly and keeps about the next heap
// goal mapped, so an idle node's daemon and shims hold megabytes they no
// longer use. A Releaser collects and returns them a short while after the
// last piece of work. Work is what the caller says it is: the daemon counts
// the calls that change pods or images, not the kubelet's polls, which
// never stop and leave little garbage.
package memrelease

import (
	"runtime/debug"
	"sync"
	"time"
)

// DefaultQuiet is how long after the last piece of work the heap is
// returned: longer than the gaps between the calls of one pod start, so a
// burst pays for one collection, not one per call.
const DefaultQuiet = 2 * time.Second

// Releaser returns the free heap once no work has been done for quiet.
// The zero value is not usable; use New.
type Releaser struct {
	quiet   time.Duration
	release func()

	mu    sync.Mutex
	timer *time.Timer
}

// New returns a Releaser that returns the heap quiet after the last Worked.
func New(quiet time.Duration) *Releaser {
	return &Releaser{quiet: quiet, release: debug.FreeOSMemory}
}

// Worked says work was just done: the heap is returned quiet from now,
// unless more work comes first.
func (r *Releaser) Worked() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timer == nil {
		r.timer = time.AfterFunc(r.quiet, r.fire)
		return
	}
	r.timer.Reset(r.quiet)
}

func (r *Releaser) fire() {
	// A full collection, then every free page back: a few milliseconds of
	// CPU for a heap of a few megabytes, once per burst.
	r.release()
}
