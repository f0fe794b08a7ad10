package shim

import (
	"errors"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/launch"
)

// reaper is the shim's one waiter for children. As a child subreaper the
// shim inherits every orphan of its pods (a container's daemonised
// children when it shares a pid namespace), so something must wait(2) for
// any pid; one goroutine driven by SIGCHLD does it for all of them, and
// hands the exits of pids the shim tracks (container inits, exec'd
// processes, pause) to their callbacks.
//
// A pass has two steps. First every tracked pid is waited for by pid,
// unless held: nothing else waits for those. Then the other children (the
// orphans), each found with a peek (waitid(P_ALL, WNOWAIT)) and reaped by
// pid unless held. Held are the pids someone else waits for or still
// names: nsexec's stage 0 of a launch in progress (os/exec waits for it),
// a launch's final process until its launcher registers it with watch or
// gives up on it (no exit is ever unclaimed), a pid pinned while its
// /proc entry opens. Stage 0 is held from the moment os/exec returns its
// pid (launch.Options.Spawned); before that, from just before the fork,
// the launch holds launchMu for reading and the second step runs only
// when it can take it for writing (else the launch kicks another pass
// once it knows the pid). A launch that then waits (a slow exec, a stage
// 0 stopped in a frozen cgroup, an init throttled by its cgroup) holds
// nothing else: the other pods of the process, their launches and their
// orphans go on.
type reaper struct {
	launchMu sync.RWMutex

	// mu guards waiters, held and bootstrapping.
	mu      sync.Mutex
	waiters map[int]waiter
	held    map[int]int // pid: holds; never reaped while held
	// bootstrapping counts the launches between spawned and bootstrapped,
	// whose final process exists (a child of the shim: nsexec clones it
	// with CLONE_PARENT) before its launcher knows its pid: an orphan pass
	// leaves alone a zombie that may be one (see mayBeLaunched).
	bootstrapping int

	sigs chan os.Signal
	kick chan struct{}
}

func newReaper() *reaper {
	r := &reaper{waiters: map[int]waiter{}, held: map[int]int{},
		sigs: make(chan os.Signal, 1), kick: make(chan struct{}, 1)}
	signal.Notify(r.sigs, unix.SIGCHLD)
	go r.run()
	return r
}

func (r *reaper) run() {
	for {
		select {
		case <-r.sigs:
		case <-r.kick:
		}
		r.reap()
	}
}

// kickPass asks for a pass: a hold ended or a launch bootstrapped, and an
// exit a pass skipped may be waiting.
func (r *reaper) kickPass() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// waiter is a tracked process's callback, and what the process is to the
// shim (its container, pause or exec): a pid names that process only while
// its waiter is registered.
type waiter struct {
	owner any
	fn    func(unix.WaitStatus)
}

// launchHold is one launch's hold on the reaper: from launching until done.
type launchHold struct {
	r             *reaper
	rlocked       bool
	stage0        int  // held from spawned until bootstrapped
	bootstrapping bool // counted in r.bootstrapping
	held          []int
	pins          []func()
	released      bool
}

// launching starts a launch: hand spawned and bootstrapped to launch.Start
// (Options.Spawned, Options.Bootstrapped), call watch to register the
// started process, and done at the end, however the launch went.
func (r *reaper) launching() *launchHold {
	r.launchMu.RLock()
	return &launchHold{r: r, rlocked: true}
}

// spawned holds stage 0, pid, which launch.Start waits for, and lets the
// orphans be reaped again.
func (l *launchHold) spawned(pid int) {
	l.r.mu.Lock()
	l.r.held[pid]++
	l.r.bootstrapping++
	l.r.mu.Unlock()
	l.stage0, l.bootstrapping = pid, true
	l.unlock()
}

// bootstrapped holds the launch's final process, pid, and lets stage 0
// go: launch.Start has waited for it.
func (l *launchHold) bootstrapped(pid int) {
	l.hold(pid)
	l.leaveBootstrap()
	l.unlock() // a launcher without Spawned (a test's) holds launchMu until here
}

// leaveBootstrap ends the spawned-to-bootstrapped window, if it is in it.
func (l *launchHold) leaveBootstrap() {
	if !l.bootstrapping {
		return
	}
	l.bootstrapping = false
	l.r.mu.Lock()
	l.r.bootstrapping--
	l.r.mu.Unlock()
	l.r.unhold(l.stage0)
}

func (l *launchHold) hold(pid int) {
	l.r.mu.Lock()
	l.r.held[pid]++
	l.r.mu.Unlock()
	l.held = append(l.held, pid)
}

// pin holds pid for the launch (until release, or done at the latest).
func (l *launchHold) pin(pid int, owner any) (release func(), ok bool) {
	release, ok = l.r.pin(pid, owner)
	l.pins = append(l.pins, release)
	return release, ok
}

// pin holds pid while it is owner's process, not reaped yet, and reports
// whether it was: until release, it cannot be reaped, so pid names that
// very process (its /proc entry, a signal). A pid reaped and reused meanwhile
// has another owner, or none.
func (r *reaper) pin(pid int, owner any) (release func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, tracked := r.waiters[pid]; !tracked || w.owner != owner {
		return func() {}, false
	}
	r.held[pid]++
	var once sync.Once
	return func() { once.Do(func() { r.unhold(pid) }) }, true
}

// watch registers fn to run (on the reaper's goroutine, so briefly) when
// pid, the launch's process and owner's, exits; it is held until done.
func (l *launchHold) watch(pid int, owner any, fn func(unix.WaitStatus)) {
	l.r.mu.Lock()
	l.r.waiters[pid] = waiter{owner, fn}
	l.r.mu.Unlock()
}

// done ends the launch: its holds go, and a pass runs for what they kept.
func (l *launchHold) done() {
	if l.released {
		return
	}
	l.released = true
	l.leaveBootstrap()
	l.unlock()
	for _, release := range l.pins {
		release()
	}
	for _, pid := range l.held {
		l.r.unhold(pid)
	}
}

func (l *launchHold) unlock() {
	if l.rlocked {
		l.rlocked = false
		l.r.launchMu.RUnlock()
		l.r.kickPass()
	}
}

func (r *reaper) unhold(pid int) {
	r.mu.Lock()
	if r.held[pid]--; r.held[pid] <= 0 {
		delete(r.held, pid)
	}
	r.mu.Unlock()
	r.kickPass()
}

// exit is one reaped child's status for its callback.
type exit struct {
	fn func(unix.WaitStatus)
	ws unix.WaitStatus
}

// reap waits for every child that has exited and may be reaped now. A
// single SIGCHLD may stand for many exits (signals coalesce), hence the
// loops until none is left.
func (r *reaper) reap() {
	// Most passes (a launch's end kicks one) find nothing exited: one
	// peek, not a wait4 for every tracked pid. Peeking reaps nothing, so
	// it is safe beside a launch's own wait for its stage 0.
	if nextExited() <= 0 {
		return
	}
	var exits []exit
	r.mu.Lock()
	for pid, w := range r.waiters {
		if r.held[pid] > 0 {
			continue
		}
		if ws, ok := waitPid(pid); ok {
			delete(r.waiters, pid)
			exits = append(exits, exit{w.fn, ws})
		}
	}
	r.mu.Unlock()
	for _, e := range exits {
		e.fn(e.ws)
	}
	if !r.launchMu.TryLock() {
		return // a launch is forking: it kicks a pass once its stage 0 is held
	}
	defer r.launchMu.Unlock()
	for {
		pid := nextExited()
		if pid <= 0 {
			return
		}
		r.mu.Lock()
		if r.held[pid] > 0 || r.bootstrapping > 0 && mayBeLaunched(pid) {
			// Its launcher (or a pin) has it, or may have it in a moment:
			// the children behind it wait for the pass the hold's end (or
			// the bootstrap's) kicks.
			r.mu.Unlock()
			return
		}
		ws, ok := waitPid(pid)
		w := r.waiters[pid]
		if ok {
			delete(r.waiters, pid)
		}
		r.mu.Unlock()
		if !ok {
			// Not reaped after all (a failed launch's own reap of its
			// final process can come first): the next SIGCHLD looks
			// again, rather than a kick that could spin.
			return
		}
		if w.fn != nil {
			w.fn(ws)
		}
	}
}

// shimBinaryName is the sealed binary a pause starts from (the shim's own).
const shimBinaryName = "crib-shim"

// mayBeLaunched says whether the zombie pid may be a launch's final
// process, killed before its launcher learned its pid: it was started from
// the binaries launches start (crib-init for inits and execs, crib-shim for
// a pause). Reaped by a pass, its pid could be reused before the launcher
// places it in its cgroup and RDT class. A container's own process of that
// name waits until no launch is bootstrapping, no longer.
func mayBeLaunched(pid int) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return false // gone meanwhile: nothing to protect
	}
	c := strings.TrimSuffix(string(comm), "\n")
	return c == launch.InitBinaryName || c == shimBinaryName
}

// waitPid reaps pid if it has exited.
func waitPid(pid int) (unix.WaitStatus, bool) {
	var ws unix.WaitStatus
	for {
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return ws, err == nil && got == pid
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
