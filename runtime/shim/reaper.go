package shim

import (
	"errors"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper is the shim's one waiter for children. As a child subreaper the
// shim inherits every orphan of its pods (a container's daemonised
// children when it shares a pid namespace), so something must wait(2) for
// any pid; one goroutine driven by SIGCHLD does it for all of them, and
// hands the exits of pids the shim tracks (container inits, exec'd
// processes, pause) to their callbacks.
//
// Starting a process goes through os/exec, which waits for its own child
// (nsexec's stage 0) by pid. A wait4(-1) at that moment could take that
// child's status away, so launches hold launchMu for reading and a reaping
// pass holds it for writing: no pass runs during a launch, and a launch
// registers its process before it lets go, so no exit is ever unclaimed.
type reaper struct {
	launchMu sync.RWMutex

	// mu guards waiters.
	mu      sync.Mutex
	waiters map[int]func(unix.WaitStatus)

	sigs chan os.Signal
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]func(unix.WaitStatus){}, sigs: make(chan os.Signal, 1)}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go r.run()
	return r
}

func (r *reaper) run() {
	for range r.sigs {
		r.reap()
	}
}

// launching takes the launch side of launchMu; call the returned func
// once the started process is registered with watch.
func (r *reaper) launching() func() {
	r.launchMu.RLock()
	return r.launchMu.RUnlock
}

// watch registers fn to run (on the reaper's goroutine, so briefly) when
// pid exits. Preconditions: inside launching, so pid cannot have been
// reaped yet.
func (r *reaper) watch(pid int, fn func(unix.WaitStatus)) {
	r.mu.Lock()
	r.waiters[pid] = fn
	r.mu.Unlock()
}

// reap waits for every child that has exited. A single SIGCHLD may stand
// for many exits (signals coalesce), hence the loop until none is left.
func (r *reaper) reap() {
	r.launchMu.Lock()
	defer r.launchMu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		r.mu.Lock()
		fn := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if fn != nil {
			fn(ws)
		}
	}
}

// exitCode is the code a shell would report: the exit status, or 128 plus
// the signal that killed the process.
func exitCode(ws unix.WaitStatus) int32 {
	if ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ws.ExitStatus())
}
