// Package ocihook runs one OCI runtime-spec hook (config.md, "POSIX-platform
// Hooks"): an executable named by absolute path, with its args and env, the
// container's state JSON on stdin, killed with the processes of its group
// when its timeout or its caller's context ends, its output kept (bounded)
// for the error.
//
// Hooks are host binaries, named by root-owned configuration (NRI plugins,
// CDI spec directories) that reaches the spec through crib's daemon, never
// by a CRI client: what a hook runs, it runs as root (prestart,
// createRuntime, poststart, poststop in the runtime's namespaces). The
// shim and the container init both run hooks through Run, so it stays free
// of goroutines: the init is single-threaded.
//
// Internal to crib; no API compatibility promised.
package ocihook

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Kinds of hooks, as the spec's JSON names them.
const (
	Prestart        = "prestart"
	CreateRuntime   = "createRuntime"
	CreateContainer = "createContainer"
	StartContainer  = "startContainer"
	Poststart       = "poststart"
	Poststop        = "poststop"
)

// Each returns the hooks of every kind in hooks, in the order they run,
// with the kind's name: for checks that look at all of them.
func Each(hooks *specs.Hooks) []Named {
	if hooks == nil {
		return nil
	}
	var out []Named
	for _, k := range []struct {
		kind  string
		hooks []specs.Hook
	}{
		{Prestart, hooks.Prestart}, {CreateRuntime, hooks.CreateRuntime}, {CreateContainer, hooks.CreateContainer},
		{StartContainer, hooks.StartContainer}, {Poststart, hooks.Poststart}, {Poststop, hooks.Poststop},
	} {
		for i, h := range k.hooks {
			out = append(out, Named{Kind: k.kind, Index: i, Hook: h})
		}
	}
	return out
}

// Named is one hook with its place in the spec.
type Named struct {
	Kind  string
	Index int
	specs.Hook
}

func (n Named) String() string { return fmt.Sprintf("%s hook #%d (%s)", n.Kind, n.Index, n.Path) }

// Validate checks what the spec requires of a hook before anything runs
// it: an absolute path (a relative one would be resolved against whatever
// the working directory happens to be) and a positive timeout when one is
// set.
func Validate(h specs.Hook) error {
	switch {
	case h.Path == "":
		return errors.New("hook has no path")
	case !filepath.IsAbs(h.Path):
		return fmt.Errorf("hook path %q is not absolute", h.Path)
	case strings.ContainsRune(h.Path, 0):
		return fmt.Errorf("hook path %q contains a NUL byte", h.Path)
	case h.Timeout != nil && *h.Timeout <= 0:
		return fmt.Errorf("hook %s: timeout %d is not positive", h.Path, *h.Timeout)
	}
	return nil
}

// Forker starts the hook's process with fork (which returns its pid) and
// returns how to collect its exit status once the process has exited. A
// subreaper that reaps any child (the shim's waitid(P_ALL) loop) must
// keep its hands off pid until reap is called, so that the process
// group stays valid for a kill; nil forks and reaps with wait4.
type Forker func(fork func() (pid int, err error)) (reap func() unix.WaitStatus, err error)

// Options are how a hook runs beyond what the spec says.
type Options struct {
	// Dir is the working directory of the hook; "" keeps the caller's.
	Dir string
	// Fork starts and reaps the process; nil: fork and wait4.
	Fork Forker
}

// MaxOutput bounds the output an error keeps: the last bytes of stdout
// and stderr together, which is where a failing tool says why.
const MaxOutput = 4096

// Error is a hook that failed: it could not start, exited non-zero, was
// killed by a signal or ran out of time.
type Error struct {
	Path     string
	Reason   string // "exit status 3", "killed by signal 9", "timed out after 2s", "start: …"
	Output   string // the last MaxOutput bytes, "…" first when cut
	TimedOut bool
	err      error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("hook %s: %s", e.Path, e.Reason)
	if out := strings.TrimSpace(e.Output); out != "" {
		s += ": output: " + out
	}
	return s
}

func (e *Error) Unwrap() error { return e.err }

// Run runs h with state (the container's state JSON) on its stdin and
// waits for it. It runs in its own process group; when h's timeout passes
// or ctx ends first, every process of that group is killed with SIGKILL
// (one that left the group with setsid is not reached). Its stdout and
// stderr go to one pipe whose tail the error keeps. The hook inherits no
// fd of the caller but those three: every other fd is made close-on-exec
// first. Without h.Env the hook gets an empty environment, not the
// caller's. Run returns an *Error for a hook that failed.
func Run(ctx context.Context, h specs.Hook, state []byte, o Options) error {
	if err := Validate(h); err != nil {
		return err
	}
	var own time.Time // the hook's own deadline
	if h.Timeout != nil {
		own = time.Now().Add(time.Duration(*h.Timeout) * time.Second)
	}
	deadline := own
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	stdin, err := stateFile(state)
	if err != nil {
		return &Error{Path: h.Path, Reason: "start: " + err.Error(), err: err}
	}
	defer unix.Close(stdin)
	var out [2]int
	if err := unix.Pipe2(out[:], unix.O_CLOEXEC); err != nil {
		return &Error{Path: h.Path, Reason: "start: output pipe: " + err.Error(), err: err}
	}
	defer unix.Close(out[0])
	if err := unix.SetNonblock(out[0], true); err != nil {
		unix.Close(out[1])
		return &Error{Path: h.Path, Reason: "start: output pipe: " + err.Error(), err: err}
	}
	p, err := start(h, o, stdin, out[1])
	unix.Close(out[1])
	if err != nil {
		return &Error{Path: h.Path, Reason: "start: " + err.Error(), err: err}
	}
	defer unix.Close(p.pidfd)
	// A ctx cancelled without a deadline (the caller went away) kills the
	// group from another goroutine; the poll below then sees the exit. The
	// leader is not reaped before stop, so its pid still names the group.
	var mu sync.Mutex
	killed, reaped := false, false
	stopKill := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !reaped {
			killed = true
			_ = unix.Kill(-p.pid, unix.SIGKILL)
		}
	})
	tail := &tailBuffer{}
	timedOut, werr := p.await(out[0], deadline, tail)
	stopKill()
	mu.Lock()
	reaped = true
	cancelled := killed
	mu.Unlock()
	ws := p.reap()
	e := &Error{Path: h.Path, Output: tail.String(), TimedOut: timedOut}
	switch {
	case werr != nil:
		e.Reason, e.err = "wait: "+werr.Error(), werr
	case timedOut && deadline.Equal(own):
		e.Reason, e.err = fmt.Sprintf("timed out after %ds and was killed", *h.Timeout), context.DeadlineExceeded
	case timedOut || cancelled:
		e.Reason, e.err = "killed: its caller's deadline passed or it was cancelled", context.Cause(ctx)
		if e.err == nil {
			e.err = context.DeadlineExceeded
		}
	case ws.Signaled():
		e.Reason = fmt.Sprintf("killed by signal %d (%v)", ws.Signal(), ws.Signal())
	case ws.ExitStatus() != 0:
		e.Reason = fmt.Sprintf("exit status %d", ws.ExitStatus())
	default:
		return nil
	}
	return e
}

// stateFile returns a memfd holding state, at offset 0: a file rather than
// a pipe, so that a hook that never reads its stdin cannot block the caller.
func stateFile(state []byte) (int, error) {
	fd, err := unix.MemfdCreate("oci-state", unix.MFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("state file: %w", err)
	}
	for b := state; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("state file: %w", err)
		}
		b = b[n:]
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("state file: %w", err)
	}
	return fd, nil
}

// proc is a started hook: its pid (and process group), a pidfd to wait
// on without reaping, and how to reap it.
type proc struct {
	pid, pidfd int
	reap       func() unix.WaitStatus
}

// start forks the hook with stdin and out as its fds 0, 1 and 2.
func start(h specs.Hook, o Options, stdin, out int) (*proc, error) {
	argv := h.Args
	if len(argv) == 0 {
		argv = []string{h.Path}
	}
	env := h.Env
	if env == nil {
		env = []string{}
	}
	// Descriptors a process inherited, or made without O_CLOEXEC, would
	// pass into the hook (runc marks every fd above stdio the same way
	// before it starts anything): the hook gets exactly its three.
	if err := closeExecFrom(3); err != nil {
		return nil, err
	}
	attr := &syscall.ProcAttr{Dir: o.Dir, Env: env, Files: []uintptr{uintptr(stdin), uintptr(out), uintptr(out)},
		Sys: &syscall.SysProcAttr{Setpgid: true}}
	fork := func() (int, error) { return syscall.ForkExec(h.Path, argv, attr) }
	p := &proc{pidfd: -1}
	var err error
	if o.Fork != nil {
		p.reap, err = o.Fork(func() (int, error) {
			pid, err := fork()
			p.pid = pid
			return pid, err
		})
	} else {
		p.pid, err = fork()
		p.reap = func() unix.WaitStatus { return wait4(p.pid) }
	}
	if err != nil {
		return nil, err
	}
	// Not reaped until p.reap: the pid still names the process.
	if p.pidfd, err = unix.PidfdOpen(p.pid, 0); err != nil {
		_ = unix.Kill(-p.pid, unix.SIGKILL)
		p.reap()
		return nil, fmt.Errorf("pidfd_open %d: %w", p.pid, err)
	}
	return p, nil
}

func wait4(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			return ws
		}
	}
}

// outputGrace is how long output is still read after the hook exited, for
// what it wrote last; a child it left behind may hold the pipe open for ever.
const outputGrace = 100 * time.Millisecond

// await reads output into tail until the process has exited, killing its
// group once deadline (zero: none) has passed. It does not reap.
func (p *proc) await(out int, deadline time.Time, tail *tailBuffer) (timedOut bool, err error) {
	fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}, {Fd: int32(out), Events: unix.POLLIN}}
	exited := time.Time{}
	for {
		timeout := -1
		switch {
		case !exited.IsZero():
			timeout = max(0, int(time.Until(exited.Add(outputGrace)).Milliseconds()))
		case !deadline.IsZero() && !timedOut:
			timeout = max(0, int(time.Until(deadline).Milliseconds())+1)
		}
		_, err := unix.Poll(fds, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			_ = unix.Kill(-p.pid, unix.SIGKILL)
			return timedOut, fmt.Errorf("poll: %w", err)
		}
		if fds[1].Revents != 0 {
			if readOutput(out, tail) {
				fds[1].Fd = -1 // EOF: every writer is gone
			}
		}
		if fds[0].Revents != 0 && exited.IsZero() {
			exited = time.Now()
			fds[0].Fd = -1
		}
		switch {
		case !exited.IsZero() && (fds[1].Fd < 0 || time.Since(exited) >= outputGrace):
			if timedOut {
				// What the leader left in its group goes too.
				_ = unix.Kill(-p.pid, unix.SIGKILL)
			}
			return timedOut, nil
		case exited.IsZero() && !deadline.IsZero() && !timedOut && !time.Now().Before(deadline):
			// Checked whatever poll returned: a hook that writes without
			// pause must time out too.
			timedOut = true
			_ = unix.Kill(-p.pid, unix.SIGKILL)
		}
	}
}

// readOutput reads what the pipe holds now into tail and reports EOF.
func readOutput(fd int, tail *tailBuffer) (eof bool) {
	var buf [8192]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case n > 0:
			tail.Write(buf[:n])
		case err == nil:
			return true
		case errors.Is(err, unix.EINTR):
		default: // EAGAIN: nothing more now
			return false
		}
	}
}

// tailBuffer keeps the last MaxOutput bytes written to it.
type tailBuffer struct {
	b   []byte
	cut bool
}

func (t *tailBuffer) Write(p []byte) {
	t.b = append(t.b, p...)
	if over := len(t.b) - MaxOutput; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
		t.cut = true
	}
}

func (t *tailBuffer) String() string {
	if t.cut {
		return "…" + string(t.b)
	}
	return string(t.b)
}

// closeExecFrom marks every fd from lowfd up close-on-exec.
func closeExecFrom(lowfd int) error {
	err := unix.CloseRange(uint(lowfd), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	// Before Linux 5.11: one by one, from /proc/self/fd.
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	defer unix.Close(dir)
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(dir, buf)
		if err != nil {
			return fmt.Errorf("mark fds close-on-exec: %w", err)
		}
		if n == 0 {
			return nil
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil)
		for _, name := range names {
			var fd int
			if _, err := fmt.Sscan(name, &fd); err == nil && fd >= lowfd && fd != dir {
				unix.CloseOnExec(fd)
			}
		}
	}
}
