package shim

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/seccomp"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// maxExecOutput bounds each of stdout and stderr kept by ExecSync: both fit
// one ttrpc message (4 MiB) with room for the rest of the reply. The
// kubelet keeps far less of a probe's output. Output past the bound is
// read and dropped, so the process never blocks on a full pipe.
const maxExecOutput = 2<<20 - 8<<10

// nsKinds are the namespaces an exec'd process joins, in /proc/<pid>/ns
// names, user first as nsexec needs.
var nsKinds = []struct {
	name string
	flag uint32
}{
	{"user", unix.CLONE_NEWUSER}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"cgroup", unix.CLONE_NEWCGROUP},
	{"time", unix.CLONE_NEWTIME}, {"mnt", unix.CLONE_NEWNS},
}

// ExecSync runs a process in a running container and returns its output
// and exit code. A timeout kills it and fails with DeadlineExceeded.
func (s *service) ExecSync(ctx context.Context, r *shimapi.ExecSyncRequest) (*shimapi.ExecSyncResponse, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	var proc specs.Process
	if err := json.Unmarshal(r.Process, &proc); err != nil {
		return nil, fmt.Errorf("exec in container %s: parse process: %w: %w", r.Id, err, errdefs.ErrInvalidArgument)
	}
	if len(proc.Args) == 0 || proc.Terminal {
		return nil, fmt.Errorf("exec in container %s: process needs args and no terminal: %w", r.Id, errdefs.ErrInvalidArgument)
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.Timeout)*time.Second)
		defer cancel()
	}
	resp, err := s.execSync(ctx, c, &proc)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", r.Id, err)
	}
	return resp, nil
}

// execStreams say what an exec'd process's stdio is: output writers (nil:
// not wanted, the process gets /dev/null) and whether the caller feeds its
// stdin. With a terminal, the pty is both, and stderr is unused.
type execStreams struct {
	stdout, stderr io.Writer
	stdin          bool
}

// execProc is one process exec'd into a container, from its start to its
// reaped exit.
type execProc struct {
	p       *launch.Process
	exit    chan unix.WaitStatus
	copiers sync.WaitGroup
	outputs []*os.File // read ends the copiers drain (the pty master with a terminal)
	// stdin is the write end of the process's stdin, or its pty master;
	// nil without stdin.
	stdin *os.File
	// console is the pty master of a process with a terminal.
	console *os.File
}

func (s *service) execSync(ctx context.Context, c *container, proc *specs.Process) (*shimapi.ExecSyncResponse, error) {
	var stdout, stderr boundedBuffer
	e, err := s.startExecProc(ctx, c, proc, execStreams{stdout: &stdout, stderr: &stderr})
	if err != nil {
		return nil, err
	}
	ws, err := e.wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("process %v: %w", proc.Args, err)
	}
	return &shimapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: exitCode(ws)}, nil
}

// startExecProc starts proc in the running container c with the given
// stdio and lets it run. The output copiers run until wait drains them.
func (s *service) startExecProc(ctx context.Context, c *container, proc *specs.Process, st execStreams) (_ *execProc, retErr error) {
	e := &execProc{exit: make(chan unix.WaitStatus, 1)}
	filter, err := s.execSeccomp(c)
	if err != nil {
		return nil, err
	}
	// Nothing waits between the exec's set-up and its execve: Start goes
	// with the config.
	o := launch.Options{Role: nsproto.RoleExec, Place: s.classPlacer(c.class, c.id), StartAtOnce: true,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleExec,
			Spec: &specs.Spec{Process: proc, Linux: &specs.Linux{}}, Seccomp: filter}}
	o = s.launchOptions(o, c.id)
	var child []*os.File
	closeChild := func() {
		for _, f := range child {
			_ = f.Close()
		}
		child = nil
	}
	defer func() {
		closeChild()
		if retErr != nil {
			e.closeParents()
		}
	}()
	var writers []io.Writer
	if !proc.Terminal {
		for _, w := range []struct {
			dst io.Writer
			fd  **os.File
		}{{st.stdout, &o.Stdout}, {st.stderr, &o.Stderr}} {
			if w.dst == nil {
				continue
			}
			r, cw, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("create output pipe: %w", err)
			}
			e.outputs, writers, child = append(e.outputs, r), append(writers, w.dst), append(child, cw)
			*w.fd = cw
		}
		if st.stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("create stdin pipe: %w", err)
			}
			e.stdin, o.Stdin, child = w, r, append(child, r)
		}
	}
	p, err := s.startExec(ctx, c, o, e)
	closeChild()
	if err != nil {
		return nil, err
	}
	e.p = p
	if p.Console != nil {
		// Reading the master ends with EIO once every slave fd is closed:
		// once the process and whatever it forked are gone.
		e.console, p.Console = p.Console, nil
		e.outputs = []*os.File{e.console}
		writers = []io.Writer{cmp.Or[io.Writer](st.stdout, io.Discard)}
		if st.stdin {
			e.stdin = e.console
		}
	}
	for i, r := range e.outputs {
		e.copiers.Add(1)
		go func(dst io.Writer) {
			defer e.copiers.Done()
			_ = copyOutput(dst, r)
		}(writers[i])
	}
	if err := p.Exec(ctx); err != nil {
		_ = p.Signal(unix.SIGKILL)
		<-e.exit
		p.Release()
		drain(&e.copiers, e.outputs)
		return nil, err
	}
	return e, nil
}

// wait returns the process's exit once it is reaped and its output read.
// Ending ctx kills it (through its pidfd: never another process) and
// returns ctx's error.
func (e *execProc) wait(ctx context.Context) (unix.WaitStatus, error) {
	defer e.p.Release() // reaped by the reaper, not by p.Wait
	var ws unix.WaitStatus
	var err error
	select {
	case ws = <-e.exit:
	case <-ctx.Done():
		_ = e.p.Signal(unix.SIGKILL)
		<-e.exit
		err = ctx.Err()
	}
	drain(&e.copiers, e.outputs)
	e.closeParents()
	return ws, err
}

// closeParents closes the shim's ends of the process's stdio.
func (e *execProc) closeParents() {
	for _, f := range append(e.outputs, e.stdin) {
		if f != nil {
			_ = f.Close()
		}
	}
}

// execSeccomp returns c's seccomp filter (nil: none) compiled for its
// execs, once per container, here: handed compiled to the init of each
// exec, the profile is not decoded and compiled again in every one of
// those fresh processes (~0.45 ms for RuntimeDefault). The container's
// own init compiled the same profile, and its warnings, at its start.
func (s *service) execSeccomp(c *container) (*initmsg.SeccompFilter, error) {
	c.execFilterOnce.Do(func() {
		if c.seccomp == nil {
			return
		}
		f, err := seccomp.Compile(c.seccomp)
		if err != nil {
			c.execFilterErr = fmt.Errorf("compile seccomp filter: %w", err)
			return
		}
		for _, w := range f.Warnings {
			s.logger.Info("Compiled the container's seccomp filter for execs with a warning", "containerID", c.id, "warning", w)
		}
		c.execFilter = initmsg.NewSeccompFilter(f.Program, f.Flags)
	})
	return c.execFilter, c.execFilterErr
}

// startExec launches the process into the container's namespaces, opened
// by fd from its init's /proc entry. The launch pins the init's pid while
// they open: it is neither reaped nor reused meanwhile.
func (s *service) startExec(ctx context.Context, c *container, o launch.Options, e *execProc) (*launch.Process, error) {
	l := s.reaper.launching()
	defer l.done()
	// Pinned first, as the container's own process: then its state holds.
	c.mu.Lock()
	pid := c.rec.Pid
	c.mu.Unlock()
	unpin, pinned := l.pin(pid, c)
	defer unpin()
	c.mu.Lock()
	ok := pinned && c.rec.Pid == pid && c.rec.Status == StatusRunning && !c.reaped
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("container is not running: %w", errdefs.ErrFailedPrecondition)
	}
	pl, err := s.cg.Placement(c.cgroup)
	if err != nil {
		return nil, err
	}
	defer pl.Close()
	o.Cgroup = pl
	files, err := containerNamespaces(pid)
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	if err != nil {
		return nil, err
	}
	unpin() // the files name the namespaces now, whatever becomes of the init
	for i, f := range files {
		if f != nil {
			o.Join = append(o.Join, launch.Namespace{Type: nsKinds[i].flag, File: f})
		}
	}
	o.Spawned, o.Bootstrapped = l.spawned, l.bootstrapped
	p, err := launch.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	l.watch(p.Pid, e, func(ws unix.WaitStatus) { e.exit <- ws })
	return p, nil
}

// containerNamespaces opens pid's namespaces that differ from the shim's
// own (joining one's own user namespace is EINVAL), nil for the others.
func containerNamespaces(pid int) ([]*os.File, error) {
	ours, err := ownNamespaces()
	if err != nil {
		return nil, err
	}
	files := make([]*os.File, len(nsKinds))
	base := "/proc/" + strconv.Itoa(pid) + "/ns/"
	for i, k := range nsKinds {
		if ours[i] == nil {
			continue // the kernel has no such namespace type
		}
		f, err := os.Open(base + k.name)
		if err != nil {
			return files, fmt.Errorf("open %s namespace of pid %d: %w", k.name, pid, err)
		}
		var theirs unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &theirs); err != nil || (theirs.Ino == ours[i].Ino && theirs.Dev == ours[i].Dev) {
			_ = f.Close()
			continue
		}
		files[i] = f
	}
	return files, nil
}

// ownNamespaces are the shim's namespaces, by nsKinds (nil where the
// kernel lacks the type), read once: the process's namespaces are its main
// thread's, which never changes them. A failed read is not kept: the next
// exec reads again.
func ownNamespaces() ([]*unix.Stat_t, error) {
	ownNS.mu.Lock()
	defer ownNS.mu.Unlock()
	if ownNS.st != nil {
		return ownNS.st, nil
	}
	out := make([]*unix.Stat_t, len(nsKinds))
	for i, k := range nsKinds {
		var st unix.Stat_t
		err := unix.Stat("/proc/self/ns/"+k.name, &st)
		switch {
		case errors.Is(err, unix.ENOENT): // the kernel has no such namespace type
		case err != nil:
			return nil, fmt.Errorf("stat the shim's %s namespace: %w", k.name, err)
		default:
			out[i] = &st
		}
	}
	ownNS.st = out
	return out, nil
}

var ownNS struct {
	mu sync.Mutex
	st []*unix.Stat_t
}

// boundedBuffer keeps the first maxExecOutput bytes written to it.
type boundedBuffer struct{ bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxExecOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
