package runtime

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
)

// Phase is where a container's record stands in the daemon's own
// operations. The live state (running, exited) is the shim's; the phase
// only orders the RPCs that change a container: without it, a Remove that
// runs while Start talks to the shim leaves a container the shim knows and
// the daemon does not, and an update that lands between Start's read of
// the record and its hand-over is lost. containerd's status store refuses
// a Remove during a start ("container is in starting state", code Unknown,
// for the client to retry); crib waits instead, as CRI-O's op lock does,
// bounded by the caller's context: the kubelet would only retry.
type Phase uint8

const (
	// PhaseCreated: recorded; not started by this daemon (one that started
	// it before a restart is asked again: the shim's AlreadyExists).
	PhaseCreated Phase = iota
	// PhaseStarting: Start is handing it to the shim.
	PhaseStarting
	// PhaseRunning: handed to the shim by this daemon (its process may
	// have exited since: the shim knows).
	PhaseRunning
	// PhaseStopping: one or more Stops are signalling it.
	PhaseStopping
	// PhaseUpdating: UpdateResources is changing its limits and record.
	PhaseUpdating
	// PhaseRemoving: Remove is deleting it from the shim and the disk.
	PhaseRemoving
	// PhaseRemoved: gone; waiters get NotFound.
	PhaseRemoved
)

func (p Phase) String() string {
	switch p {
	case PhaseCreated:
		return "created"
	case PhaseStarting:
		return "starting"
	case PhaseRunning:
		return "running"
	case PhaseStopping:
		return "stopping"
	case PhaseUpdating:
		return "updating"
	case PhaseRemoving:
		return "removing"
	case PhaseRemoved:
		return "removed"
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// op is an operation that changes a container.
type op uint8

const (
	opStart op = iota
	opStop
	opUpdate
	opRemove
)

func (o op) String() string {
	return [...]string{"start", "stop", "update", "remove"}[o]
}

// verdict is what an operation does in a phase.
type verdict uint8

const (
	wait    verdict = iota // another operation holds the container: wait for it to end
	proceed                // go, entering the operation's phase
	refuse                 // FailedPrecondition
	gone                   // NotFound
)

// transitions is the table every operation is checked against: for each
// operation, the verdict in each phase and the phase it holds while it
// runs. Stops share the container (each only signals and waits, and the
// kubelet may send a second, shorter one); every other operation holds it
// alone. Stop, Update and Remove proceed from PhaseCreated too: after a
// daemon restart the shim may run a container this daemon never started.
var transitions = [...]struct {
	in      [PhaseRemoved + 1]verdict
	holding Phase
}{
	opStart: {holding: PhaseStarting, in: [...]verdict{
		PhaseCreated: proceed, PhaseStarting: wait, PhaseRunning: refuse, PhaseStopping: wait,
		PhaseUpdating: wait, PhaseRemoving: wait, PhaseRemoved: gone}},
	opStop: {holding: PhaseStopping, in: [...]verdict{
		PhaseCreated: proceed, PhaseStarting: wait, PhaseRunning: proceed, PhaseStopping: proceed,
		PhaseUpdating: wait, PhaseRemoving: wait, PhaseRemoved: gone}},
	opUpdate: {holding: PhaseUpdating, in: [...]verdict{
		PhaseCreated: proceed, PhaseStarting: wait, PhaseRunning: proceed, PhaseStopping: wait,
		PhaseUpdating: wait, PhaseRemoving: wait, PhaseRemoved: gone}},
	opRemove: {holding: PhaseRemoving, in: [...]verdict{
		PhaseCreated: proceed, PhaseStarting: wait, PhaseRunning: proceed, PhaseStopping: wait,
		PhaseUpdating: wait, PhaseRemoving: wait, PhaseRemoved: gone}},
}

// guard holds one container's phase.
type guard struct {
	id string
	// mu guards phase, settled, stoppers and changed.
	mu sync.Mutex
	// phase is the current phase; settled is the phase to return to when
	// the operation holding the container ends without changing it (a
	// Stop, an Update, a failed Start or Remove).
	phase, settled Phase
	// stoppers counts the Stops sharing PhaseStopping.
	stoppers int
	// changed is closed (and replaced) at every phase change; waiters
	// select on it.
	changed chan struct{}
}

func newGuard(id string, p Phase) *guard {
	return &guard{id: id, phase: p, settled: p, changed: make(chan struct{})}
}

// Phase returns the current phase.
func (g *guard) Phase() Phase {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.phase
}

// acquire waits until o may run, enters o's phase and returns the function
// that ends it: done(true) for a Start or Remove that did its work moves
// the container on (PhaseRunning, PhaseRemoved), anything else returns it
// to where it was.
func (g *guard) acquire(ctx context.Context, o op) (done func(ok bool), err error) {
	t := transitions[o]
	for {
		g.mu.Lock()
		switch t.in[g.phase] {
		case proceed:
			if g.phase != PhaseStopping {
				g.settled = g.phase
			}
			if o == opStop {
				g.stoppers++
			}
			g.setLocked(t.holding)
			g.mu.Unlock()
			return func(ok bool) { g.release(o, ok) }, nil
		case refuse:
			p := g.phase
			g.mu.Unlock()
			return nil, fmt.Errorf("%s container %s: it is %s: %w", o, g.id, p, errdefs.ErrFailedPrecondition)
		case gone:
			g.mu.Unlock()
			return nil, fmt.Errorf("%s container %s: %w", o, g.id, errdefs.ErrNotFound)
		}
		changed := g.changed
		g.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%s container %s: waiting while it is %s: %w", o, g.id, g.Phase(), ctx.Err())
		}
	}
}

func (g *guard) release(o op, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case o == opStop:
		if g.stoppers--; g.stoppers > 0 {
			return
		}
		g.setLocked(g.settled)
	case o == opStart && ok:
		g.settled = PhaseRunning
		g.setLocked(PhaseRunning)
	case o == opRemove && ok:
		g.setLocked(PhaseRemoved)
	default:
		g.setLocked(g.settled)
	}
}

// Preconditions: g.mu is held.
func (g *guard) setLocked(p Phase) {
	g.phase = p
	close(g.changed)
	g.changed = make(chan struct{})
}
