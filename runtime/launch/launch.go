package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// Options describe one process to start.
type Options struct {
	// Binary is the crib binary to re-execute (see SealedBinary); roles
	// init and exec run the sealed crib-init beside it instead, when there
	// is one (InitBinaryName).
	Binary string
	// Role is nsproto.RoleInit, RoleExec or RolePause.
	Role uint32
	// Join lists namespaces to enter; an entry with a nil File is joined by
	// Path, one with a File by that open nsfs file.
	Join []Namespace
	// New holds the CLONE_NEW* flags of the namespaces to create.
	New uint32
	// UIDMappings and GIDMappings are written for a new user namespace.
	UIDMappings, GIDMappings []specs.LinuxIDMapping
	// OOMScoreAdj is set before anything else, when not nil.
	OOMScoreAdj *int
	// Cgroup, when set, is the cgroup the final process is born in (see
	// cgroups.Placement): stage 0 enters it before it clones. The caller
	// keeps and closes the files.
	Cgroup *cgroups.Placement
	// Place puts the final process (host pid) where Cgroup does not: its
	// RDT class, or its cgroup when Cgroup is nil. It runs before that
	// process executes any instruction of its own.
	Place func(pid int) error
	// Spawned, when set, learns stage 0's pid as soon as it runs, before
	// it can have been reaped: a caller that reaps other children (a
	// subreaper's waitid loop) keeps its hands off it from then on, since
	// Start waits for it by pid.
	Spawned func(pid int)
	// Bootstrapped, when set, learns the final process's pid once nsexec's
	// stage 0 has been reaped (by pid): a caller that reaps other children
	// meanwhile (a subreaper's waitid loop) may do so again from then on,
	// keeping its hands off pid, which Start itself reaps if it fails.
	Bootstrapped func(pid int)
	// Config is sent to the Go init (roles init and exec).
	Config *initmsg.Config
	// StartAtOnce sends Start right behind the Config, for a process with
	// nothing to wait for between set-up and execve (an exec; not one with
	// runtime hooks): the init finds it queued when it is ready instead of
	// blocking for it. Start still returns at Ready, and Exec waits for
	// the execve.
	StartAtOnce bool
	// RuntimeHooks runs the container's prestart and createRuntime hooks
	// (pid: the init's, on the host) when Config.Hooks.Runtime asks the
	// init to wait for them: its mounts are made, pivot_root is next. An
	// error fails the launch.
	RuntimeHooks func(pid int) error
	// Stdin, Stdout and Stderr become the process's fds 0, 1 and 2.
	Stdin, Stdout, Stderr *os.File
	// Log receives the JSON log lines of nsexec and init; nil discards them.
	Log func(line string)
}

// Namespace is one namespace to join.
type Namespace struct {
	Type uint32 // CLONE_NEW*
	Path string
	File *os.File // when set, passed down as an fd instead of Path
}

// Process is a started container process, stopped before execve until Exec.
type Process struct {
	// Pid is the host pid of the process (pid 1 of a new pid namespace).
	Pid int
	// Console is the pty master of a process with a terminal
	// (Spec.Process.Terminal), nil otherwise. The caller owns it.
	Console *os.File
	proc    *os.Process
	sock    *os.File
	logs    *logTail
	started bool // Start was sent (Options.StartAtOnce)
}

// Start runs the setns path up to the point where the process is set up and
// waits for Exec (roles init and exec) or runs (role pause). On failure
// nothing it started is left running.
func Start(ctx context.Context, o Options) (started *Process, retErr error) {
	if o.StartAtOnce && o.Config != nil && o.Config.Hooks != nil && o.Config.Hooks.Runtime {
		return nil, errors.New("launch: Start at once would not wait for the runtime hooks")
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create init socket: %w", err)
	}
	sock, childSock := os.NewFile(uintptr(fds[0]), "init-socket"), os.NewFile(uintptr(fds[1]), "init-socket-child")
	logR, logW, err := os.Pipe()
	if err != nil {
		sock.Close()
		childSock.Close()
		return nil, fmt.Errorf("create log pipe: %w", err)
	}
	logs := newLogTail(logR, o.Log)
	p := &Process{sock: sock, logs: logs}
	cmd, err := p.spawn(o, childSock, logW)
	childSock.Close()
	logW.Close()
	if err != nil {
		sock.Close()
		logs.wait()
		return nil, err
	}
	if o.Spawned != nil {
		o.Spawned(cmd.Process.Pid)
	}
	stop := context.AfterFunc(ctx, func() { p.kill(cmd) })
	defer func() {
		// A ctx that ended as the launch finished has had, or is having,
		// the process killed: that is a failed launch, not a process to
		// hand over (it would be a container dead before it started).
		if !stop() && retErr == nil {
			started, retErr = nil, fmt.Errorf("launch: %w", ctx.Err())
		}
		if retErr != nil {
			p.kill(cmd)
			_ = cmd.Wait()
			p.reap()
			sock.Close()
			if p.Console != nil {
				p.Console.Close()
			}
			logs.wait()
			if ctx.Err() != nil {
				retErr = fmt.Errorf("%w: %w", retErr, ctx.Err())
			}
		}
	}()
	if err := p.bootstrap(o, cmd); err != nil {
		return nil, err
	}
	if o.Bootstrapped != nil {
		o.Bootstrapped(p.Pid)
	}
	if err := p.place(o); err != nil {
		return nil, err
	}
	if o.Role == nsproto.RolePause {
		if err := p.awaitClosed(); err != nil {
			return nil, err
		}
		sock.Close()
		return p, nil
	}
	if err := p.configure(o.Config, o.RuntimeHooks, o.StartAtOnce); err != nil {
		return nil, err
	}
	return p, nil
}

// spawn starts stage 0 with the init socket as fd 3, the log pipe as fd 4,
// then namespace files, then cgroup placement files.
func (p *Process) spawn(o Options, childSock, logW *os.File) (*exec.Cmd, error) {
	cmd := &exec.Cmd{
		Path: binaryFor(o),
		Args: []string{"crib", "init"},
		// A Go init lives for a few milliseconds on one locked thread:
		// one P, no GC, no heap profiling save ~0.3 ms of its start. The
		// user's process gets the spec's environment, not this one.
		Env: []string{initmsg.EnvInitPipe + "=3", initmsg.EnvLogPipe + "=4",
			"GOMAXPROCS=1", "GOGC=off", "GODEBUG=memprofilerate=0"},
		Stdin:  o.Stdin,
		Stdout: o.Stdout,
		Stderr: o.Stderr,
	}
	cmd.ExtraFiles = []*os.File{childSock, logW}
	for _, ns := range o.Join {
		if ns.File != nil {
			cmd.ExtraFiles = append(cmd.ExtraFiles, ns.File)
		}
	}
	if o.Cgroup != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, o.Cgroup.Tasks...)
		if o.Cgroup.Dir != nil {
			cmd.ExtraFiles = append(cmd.ExtraFiles, o.Cgroup.Dir)
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s init: %w", cmd.Path, err)
	}
	return cmd, nil
}

// bootstrap writes the bootstrap message and answers stage 0 until it
// reports the final pid and exits.
func (p *Process) bootstrap(o Options, cmd *exec.Cmd) error {
	b := nsproto.Bootstrap{Role: o.Role, CloneFlags: o.New, OOMScoreAdj: o.OOMScoreAdj}
	nextFD := 5
	for _, ns := range o.Join {
		n := nsproto.Namespace{Type: ns.Type, Path: ns.Path}
		if ns.File != nil {
			n = nsproto.Namespace{Type: ns.Type, FD: nextFD}
			nextFD++
		}
		b.Namespaces = append(b.Namespaces, n)
	}
	if o.Cgroup != nil {
		for range o.Cgroup.Tasks {
			b.CgroupTasks = append(b.CgroupTasks, nextFD)
			nextFD++
		}
		if o.Cgroup.Dir != nil {
			b.Cgroup2FD = nextFD
		}
	}
	msg, err := b.Marshal()
	if err != nil {
		return err
	}
	if _, err := p.sock.Write(msg); err != nil {
		return p.failure(cmd, fmt.Errorf("write bootstrap: %w", err))
	}
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		pidfd = -1
	} else {
		defer unix.Close(pidfd)
	}
	for {
		if err := p.awaitSync(pidfd); err != nil {
			return p.failure(cmd, err)
		}
		s, err := nsproto.ReadSync(p.sock)
		if err != nil {
			return p.failure(cmd, err)
		}
		switch s.Type {
		case nsproto.SyncUsermapReq:
			pid, err := s.Pid()
			if err == nil {
				err = writeIDMaps(pid, o.UIDMappings, o.GIDMappings)
			}
			if err == nil {
				err = nsproto.WriteSync(p.sock, nsproto.SyncUsermapAck, nil)
			}
			if err != nil {
				return err
			}
		case nsproto.SyncPid:
			final, _, flags, err := s.Pids()
			if err != nil {
				return err
			}
			if err := p.adopt(final); err != nil {
				return err
			}
			if flags&nsproto.PidInCgroup2 == 0 {
				if err := o.Cgroup.AddProc(final); err != nil {
					_ = cmd.Wait()
					return err
				}
			}
			if err := cmd.Wait(); err != nil {
				return fmt.Errorf("nsexec stage 0: %w%s", err, p.logs.suffix())
			}
			return nil
		case nsproto.SyncError:
			return p.failure(cmd, &NsexecError{Msg: string(s.Payload)})
		default:
			return p.failure(cmd, fmt.Errorf("nsexec: unexpected sync message %d", s.Type))
		}
	}
}

// errStage0Gone is the error of a stage 0 that exited (killed: the OOM
// killer, or a kill of everything in the container's cgroup, which stage
// 0 joins on cgroup v1) before it reported the final process.
var errStage0Gone = errors.New("nsexec stage 0 exited before it reported the final process")

// awaitSync waits until the init socket has something to read (a message,
// or its end) or stage 0, behind pidfd, has exited with nothing more to
// say: errStage0Gone. The final process, once cloned, holds the other end of
// the socket while it waits for a message of ours, so a stage 0 killed
// before its report would leave the read without an end: the launch would
// hang until its caller's deadline, holding the reaper's launch lock all
// that time, so that no exit in the pod was recorded. A pidfd of -1 (a
// kernel before 5.3) waits for the socket alone.
func (p *Process) awaitSync(pidfd int) error {
	if pidfd < 0 {
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(p.sock.Fd()), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("poll init socket: %w", err)
		case fds[0].Revents != 0: // what stage 0 sent before it exited comes first
			return nil
		case fds[1].Revents != 0:
			return errStage0Gone
		}
	}
}

// NsexecError is an error the constructor reported, verbatim.
type NsexecError struct{ Msg string }

func (e *NsexecError) Error() string { return e.Msg }

// failure waits for stage 0 and explains how it ended.
func (p *Process) failure(cmd *exec.Cmd, err error) error {
	var ne *NsexecError
	if errors.As(err, &ne) {
		_ = cmd.Wait()
		return err
	}
	if werr := cmd.Wait(); werr != nil {
		return fmt.Errorf("nsexec stage 0 %v: %w%s", werr, err, p.logs.suffix())
	}
	return fmt.Errorf("%w%s", err, p.logs.suffix())
}

// adopt takes the final process: a child of ours through CLONE_PARENT.
func (p *Process) adopt(pid int) error {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("find process %d: %w", pid, err)
	}
	p.Pid, p.proc = pid, proc
	return nil
}

// place puts the process in its cgroup and class, then lets it run.
func (p *Process) place(o Options) error {
	if o.Place != nil {
		if err := o.Place(p.Pid); err != nil {
			return fmt.Errorf("place process %d: %w", p.Pid, err)
		}
	}
	if err := nsproto.WriteSync(p.sock, nsproto.SyncContinue, nil); err != nil {
		return err
	}
	s, err := nsproto.ReadSync(p.sock)
	if err != nil {
		return fmt.Errorf("process %d after placement: %w%s", p.Pid, err, p.logs.suffix())
	}
	switch s.Type {
	case nsproto.SyncRunning:
		return nil
	case nsproto.SyncError:
		return &NsexecError{Msg: string(s.Payload)}
	}
	return fmt.Errorf("nsexec: unexpected sync message %d", s.Type)
}

// awaitClosed waits until the pause process has closed its end of the init
// socket, the last fd it closes: once Start returns, it holds none that a
// container sharing its pid namespace could reach through /proc/1/fd.
func (p *Process) awaitClosed() error {
	var b [1]byte
	n, err := p.sock.Read(b[:])
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("unexpected data (%d bytes)", n)
	}
	return fmt.Errorf("pause %d: wait until it closes its fds: %w%s", p.Pid, err, p.logs.suffix())
}

// configure sends the init config (and Start with it, startAtOnce) and
// waits until init is ready to exec, running the runtime's hooks when init
// stops for them.
func (p *Process) configure(cfg *initmsg.Config, runtimeHooks func(int) error, startAtOnce bool) error {
	if cfg == nil {
		return errors.New("launch: roles init and exec need a Config")
	}
	wantHooks := cfg.Hooks != nil && cfg.Hooks.Runtime
	if wantHooks && runtimeHooks == nil {
		return errors.New("launch: the init config waits for runtime hooks, but there is nothing to run them")
	}
	if err := initmsg.WriteConfig(p.sock, cfg); err != nil {
		return err
	}
	var startErr error
	if startAtOnce {
		// Refused only when the init has gone: what it said before it went
		// (a typed Error) is read below and says more than EPIPE.
		startErr = initmsg.Write(p.sock, initmsg.Message{Type: initmsg.TypeStart})
		p.started = startErr == nil
	}
	if wantHooks {
		if err := p.runtimeHooks(runtimeHooks); err != nil {
			return err
		}
	}
	if cfg.Spec != nil && cfg.Spec.Process != nil && cfg.Spec.Process.Terminal {
		if err := p.recvConsole(); err != nil {
			return err
		}
	}
	var m initmsg.Message
	if err := initmsg.Read(p.sock, &m); err != nil {
		return fmt.Errorf("container init: %w%s", err, p.logs.suffix())
	}
	if err := m.Err(); err != nil {
		return err
	}
	if m.Type != initmsg.TypeReady {
		return fmt.Errorf("container init: unexpected message %q", m.Type)
	}
	return startErr
}

// runtimeHooks waits for init to stop before pivot_root, runs the hooks
// and lets it go on.
func (p *Process) runtimeHooks(run func(int) error) error {
	var m initmsg.Message
	if err := initmsg.Read(p.sock, &m); err != nil {
		return fmt.Errorf("container init: %w%s", err, p.logs.suffix())
	}
	if err := m.Err(); err != nil {
		return err
	}
	if m.Type != initmsg.TypeHooks {
		return fmt.Errorf("container init: unexpected message %q, want %q", m.Type, initmsg.TypeHooks)
	}
	if err := run(p.Pid); err != nil {
		return err
	}
	return initmsg.Write(p.sock, initmsg.Message{Type: initmsg.TypeResume})
}

// recvConsole takes the pty master init sends before Ready. A failure
// instead comes as an Error message, whose first byte (of a big-endian
// length under 16 MiB) is never initmsg's 'C': peek to tell them apart.
func (p *Process) recvConsole() error {
	b := make([]byte, 1)
	n, _, err := unix.Recvfrom(int(p.sock.Fd()), b, unix.MSG_PEEK)
	if err != nil || n != 1 || b[0] != 'C' {
		return nil // the Error message follows; configure reads it
	}
	c, err := initmsg.RecvConsole(p.sock)
	if err != nil {
		return fmt.Errorf("container init: %w", err)
	}
	p.Console = c
	return nil
}

// Exec lets init execve the user's process. It returns once the execve has
// happened (the init socket closes on exec) or with init's error. Should
// ctx end first (a startContainer hook that never returns), the init is
// killed and Exec fails: the socket's closing is then no execve.
func (p *Process) Exec(ctx context.Context) error {
	defer p.sock.Close()
	stop := context.AfterFunc(ctx, func() { _ = p.proc.Signal(syscall.SIGKILL) })
	if !p.started {
		if err := initmsg.Write(p.sock, initmsg.Message{Type: initmsg.TypeStart}); err != nil {
			stop()
			return err
		}
	}
	var m initmsg.Message
	err := initmsg.Read(p.sock, &m)
	if !stop() {
		return fmt.Errorf("container init: killed before its execve: %w", ctx.Err())
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("container init: %w", err)
	}
	if err := m.Err(); err != nil {
		return err
	}
	return fmt.Errorf("container init: unexpected message %q after start", m.Type)
}

// Wait waits for the process to exit and reaps it.
func (p *Process) Wait() (*os.ProcessState, error) {
	st, err := p.proc.Wait()
	p.logs.wait()
	return st, err
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.proc.Signal(sig) }

// Release closes the process's pidfd: for callers that reap it themselves
// (a subreaper's waitid loop), once it is reaped. Without it the fd stays
// open until the garbage collector finds the process unused.
func (p *Process) Release() {
	if p.proc != nil {
		_ = p.proc.Release()
	}
}

func (p *Process) kill(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
	if p.proc != nil {
		_ = p.proc.Kill()
	}
}

func (p *Process) reap() {
	if p.proc != nil {
		_, _ = p.proc.Wait()
	}
}

// writeIDMaps writes a child's user namespace maps from the host side.
// setgroups is denied first, as the kernel requires before an unprivileged
// gid_map and as a pod without host users should have it.
func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	if len(uids) == 0 || len(gids) == 0 {
		return fmt.Errorf("new user namespace of process %d: uid and gid mappings are required", pid)
	}
	base := "/proc/" + strconv.Itoa(pid) + "/"
	files := []struct{ name, data string }{
		{"setgroups", "deny"}, {"uid_map", formatIDMap(uids)}, {"gid_map", formatIDMap(gids)},
	}
	for _, f := range files {
		if err := os.WriteFile(base+f.name, []byte(f.data), 0); err != nil {
			return fmt.Errorf("write %s%s (%q): %w", base, f.name, f.data, err)
		}
	}
	return nil
}

func formatIDMap(m []specs.LinuxIDMapping) string {
	var b strings.Builder
	for _, e := range m {
		fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
	}
	return b.String()
}

// logTail forwards log lines and keeps the last few for error messages.
type logTail struct {
	mu    sync.Mutex // guards lines
	lines []string
	done  chan struct{}
}

const keptLogLines = 8

func newLogTail(r *os.File, forward func(string)) *logTail {
	t := &logTail{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if forward != nil {
				forward(line)
			}
			t.mu.Lock()
			t.lines = append(t.lines, line)
			if len(t.lines) > keptLogLines {
				t.lines = t.lines[1:]
			}
			t.mu.Unlock()
		}
	}()
	return t
}

func (t *logTail) wait() { <-t.done }

// suffix is ": log: <last lines>" when there are any.
func (t *logTail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return " (log: " + strings.Join(t.lines, " ") + ")"
}
