package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups/ocires"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shim/crilog"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Create runs a container's init up to the point where only execve is
// left, in a new cgroup, with its output going to its CRI log.
func (s *service) Create(ctx context.Context, r *shimapi.CreateRequest) (_ *shimapi.ContainerState, retErr error) {
	spec, err := parseCreate(r)
	if err != nil {
		return nil, fmt.Errorf("create container %q: %w", r.Id, err)
	}
	if err := s.reserve(r.Id); err != nil {
		return nil, err
	}
	defer s.unreserve(r.Id)
	c, err := s.create(ctx, r, spec)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", r.Id, err)
	}
	s.mu.Lock()
	s.containers[r.Id] = c
	s.mu.Unlock()
	s.logger.V(2).Info("Created container", "containerID", r.Id, "pid", c.rec.Pid)
	return c.rec.proto(), nil
}

// parseCreate checks a request before anything is made.
func parseCreate(r *shimapi.CreateRequest) (*specs.Spec, error) {
	if r.Id == "" || len(r.Id) > 200 || filepath.Base(r.Id) != r.Id || r.Id == "." || r.Id == ".." {
		return nil, fmt.Errorf("not usable as a container id: %w", errdefs.ErrInvalidArgument)
	}
	var spec specs.Spec
	if err := json.Unmarshal(r.Spec, &spec); err != nil {
		return nil, fmt.Errorf("parse spec: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if spec.Linux == nil || spec.Linux.CgroupsPath == "" {
		return nil, fmt.Errorf("spec has no linux.cgroupsPath: %w", errdefs.ErrInvalidArgument)
	}
	if err := validateHooks(spec.Hooks); err != nil {
		return nil, err
	}
	if r.Tty {
		if spec.Process == nil {
			return nil, fmt.Errorf("spec has no process: %w", errdefs.ErrInvalidArgument)
		}
		spec.Process.Terminal = true
	}
	return &spec, nil
}

func (s *service) reserve(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[id] != nil || s.reserved[id] {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	s.reserved[id] = true
	return nil
}

func (s *service) unreserve(id string) {
	s.mu.Lock()
	delete(s.reserved, id)
	s.mu.Unlock()
}

// create does Create's work; on failure it leaves nothing behind.
func (s *service) create(ctx context.Context, r *shimapi.CreateRequest, spec *specs.Spec) (_ *container, retErr error) {
	o, err := launch.OptionsFromSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	res, err := ocires.Convert(spec.Linux.Resources)
	if err != nil {
		return nil, err
	}
	c := &container{id: r.Id, cgroup: spec.Linux.CgroupsPath, class: r.RdtClass,
		file: stateFile(s.dir, r.Id), done: make(chan struct{}), cleaned: make(chan struct{}), stdinOnce: r.StdinOnce,
		subs: map[*attachSub]shimapi.AttachHeader{}, seccomp: spec.Linux.Seccomp,
		hooks: newHookSet(spec, r.Id, hookBundle(s.dir, r.Id))}
	if err := s.cg.Create(c.cgroup, res); err != nil {
		return nil, err
	}
	var undo []func() error
	defer func() {
		if retErr != nil {
			undo = append(undo, func() error { return s.cg.Remove(c.cgroup) })
			for i := len(undo) - 1; i >= 0; i-- {
				retErr = errors.Join(retErr, undo[i]())
			}
		}
	}()
	if c.oomBase, err = s.cg.OOMKills(c.cgroup); err != nil {
		return nil, err
	}
	s.watchOOM(c)
	undo = append(undo, func() error { c.endOOMWatch(); return nil })
	if r.LogPath != "" {
		if c.log, err = crilog.Open(r.LogDir, r.LogPath); err != nil {
			return nil, err
		}
		undo = append(undo, c.log.Close)
	}
	o = s.launchOptions(o, r.Id)
	launched := false
	undoHooks, err := s.setHooks(ctx, &o, c, spec)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() error { return undoHooks(launched) })
	o.Config.Rootfs = initmsg.Rootfs{Lower: r.Lower, Upper: r.Upper, Work: r.Work}
	o.Config.DevShm = r.DevShm
	o.Config.CgroupMounts = s.cgroupMounts
	if o.Cgroup, err = s.cg.Placement(c.cgroup); err != nil {
		return nil, err
	}
	defer o.Cgroup.Close()
	o.Place = s.classPlacer(c.class, c.id)
	closeChild := func() {}
	if spec.Process == nil || !spec.Process.Terminal { // with one, init makes a pty and sends its master
		if closeChild, err = c.openStdio(&o, r.Stdin); err != nil {
			return nil, err
		}
	}
	undo = append(undo, func() error { return closeOutputs(c) })
	c.rec = record{Version: recordVersion, ID: r.Id, Status: StatusCreated, CreatedAt: time.Now().UnixNano(),
		LogPath: r.LogPath, Cgroup: c.cgroup, RDTClass: c.class}
	launched = true
	err = s.start(ctx, c, o)
	closeChild()
	if err != nil {
		return nil, err
	}
	if err := c.takeConsole(r.Stdin); err != nil {
		_ = c.proc.Signal(unix.SIGKILL)
		<-c.done
		return nil, err
	}
	c.startCopiers()
	c.mu.Lock()
	err = c.persistLocked()
	c.mu.Unlock()
	if err != nil {
		_ = c.proc.Signal(unix.SIGKILL) // the exit callback closes done and the pipes
		<-c.done
		return nil, err
	}
	return c, nil
}

// start launches the init and registers its exit with the reaper before a
// reaping pass can see it.
func (s *service) start(ctx context.Context, c *container, o launch.Options) error {
	kids := s.children() // before the launch side: StartPause takes them in the other order
	l := s.reaper.launching()
	defer l.done()
	closeJoins, err := pinProcJoins(&o, kids, l)
	if err != nil {
		return err
	}
	defer closeJoins()
	o.Spawned, o.Bootstrapped = l.spawned, l.bootstrapped
	p, err := launch.Start(ctx, o)
	if err != nil {
		return err
	}
	c.proc, c.rec.Pid = p, p.Pid
	l.watch(p.Pid, c, func(ws unix.WaitStatus) { s.onExit(c, ws) })
	return nil
}

// procNS matches a namespace named through a process's /proc entry.
var procNS = regexp.MustCompile(`^/proc/([0-9]+)/ns/[a-z_]+$`)

// pinProcJoins opens the namespaces o joins through a process's /proc
// entry (the pause's, for a pod-wide pid namespace; a target container's
// init's, for pid mode TARGET) and joins them by those files. Each process
// must be a live child of this shim, the pod's own, and is pinned by the
// launch while its file opens: it can neither be reaped nor have its pid
// reused meanwhile. A pid that outlived its process (a pause that died,
// its pid since taken) would otherwise hand over some other process's
// namespace. Any other path under /proc is refused.
func pinProcJoins(o *launch.Options, kids children, l *launchHold) (closeAll func(), err error) {
	var files []*os.File
	closeAll = func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	join := slices.Clone(o.Join)
	for i, ns := range join {
		if ns.File != nil || !strings.HasPrefix(filepath.Clean(ns.Path), "/proc/") {
			continue
		}
		m := procNS.FindStringSubmatch(ns.Path)
		if m == nil {
			closeAll()
			return nil, fmt.Errorf("join %s: a namespace under /proc must be /proc/<pid>/ns/<kind>: %w", ns.Path, errdefs.ErrInvalidArgument)
		}
		pid, _ := strconv.Atoi(m[1])
		// Pinned as the pod's own process (released at the latest with the
		// launch): not reaped, so pid is still that process.
		unpin, pinned := l.pin(pid, kids.owner(pid))
		if !pinned {
			closeAll()
			return nil, fmt.Errorf("join %s: pid %d is not a running process of this pod: %w", ns.Path, pid, errdefs.ErrFailedPrecondition)
		}
		f, err := os.Open(ns.Path)
		unpin()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("join %s: %w", ns.Path, err)
		}
		files = append(files, f)
		join[i].File = f
	}
	o.Join = join
	return closeAll, nil
}

// children are the shim's pause and containers, as they were when taken.
type children struct {
	pause      *pauseProc
	containers []*container
}

func (s *service) children() children {
	s.mu.Lock()
	defer s.mu.Unlock()
	return children{pause: s.pause, containers: slices.Collect(maps.Values(s.containers))}
}

// owner is the pause or container init whose pid is pid, nil for none:
// what the reaper tracks pid for, while it is not reaped (launchHold.pin).
func (k children) owner(pid int) any {
	if pp := k.pause; pp != nil && pp.proc.Pid == pid {
		return pp
	}
	for _, c := range k.containers {
		c.mu.Lock()
		ok := c.rec.Pid == pid
		c.mu.Unlock()
		if ok {
			return c
		}
	}
	return nil
}

// classPlacer returns launch's Place callback: the RDT class (the cgroup
// is entered through launch.Options.Cgroup).
func (s *service) classPlacer(class, id string) func(int) error {
	return func(pid int) error {
		if class == "" {
			return nil
		}
		if s.classes == nil {
			return fmt.Errorf("rdt class %s: resctrl is not mounted: %w", class, errdefs.ErrFailedPrecondition)
		}
		warning, err := s.classes.Place(class, id, pid)
		if warning != nil {
			s.logger.Info("Placed container without RDT monitoring", "containerID", id, "warning", warning.Error())
		}
		return err
	}
}

// openStdio makes the pipes of the container's stdio and sets them in o.
// closeChild closes the ends the child got, once it has them.
func (c *container) openStdio(o *launch.Options, stdin bool) (closeChild func(), err error) {
	var child []*os.File
	closeChild = func() {
		for _, f := range child {
			_ = f.Close()
		}
	}
	for i := 0; i < 2; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			closeChild()
			_ = closeOutputs(c)
			return nil, fmt.Errorf("create output pipe: %w", err)
		}
		c.outputs, child = append(c.outputs, r), append(child, w)
	}
	o.Stdout, o.Stderr = child[0], child[1]
	if stdin {
		r, w, err := os.Pipe()
		if err != nil {
			closeChild()
			_ = closeOutputs(c)
			return nil, fmt.Errorf("create stdin pipe: %w", err)
		}
		c.stdin, o.Stdin, child = w, r, append(child, r)
	}
	return closeChild, nil
}

// closeOutputs closes the shim's ends of a container that never started.
func closeOutputs(c *container) error {
	for _, r := range c.outputs {
		_ = r.Close()
	}
	c.outputs = nil
	if c.stdin != nil {
		_ = c.stdin.Close()
		c.stdin = nil
	}
	return nil
}

// Start lets a created container exec its process (the init runs the
// startContainer hooks first), then runs the poststart hooks.
func (s *service) Start(ctx context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	proc := c.proc
	if c.rec.Status != StatusCreated || proc == nil || c.reaped {
		defer c.mu.Unlock()
		return nil, fmt.Errorf("start container %s: %s: %w", r.Id, c.rec.Status, errdefs.ErrFailedPrecondition)
	}
	c.proc = nil // one Start at a time; Exec below is the only user
	c.mu.Unlock()
	startedAt := time.Now().UnixNano()
	if err := proc.Exec(ctx); err != nil {
		err = fmt.Errorf("start container %s: %w", r.Id, err)
		c.mu.Lock()
		c.rec.Message = err.Error()
		c.mu.Unlock()
		_ = proc.Signal(unix.SIGKILL)
		proc.Release()
		return nil, err
	}
	proc.Release() // the reaper watches the pid from here on
	c.mu.Lock()
	switch {
	case c.rec.Status == StatusCreated:
		_ = c.setStatusLocked(StatusRunning)
		c.rec.StartedAt = startedAt
		if err := c.persistLocked(); err != nil {
			s.logger.Error(err, "Persisted container start", "containerID", r.Id)
		}
	case c.rec.StartedAt == 0:
		// It ran and exited before Exec returned (the reaper recorded
		// its exit first): it was started all the same.
		c.rec.StartedAt = startedAt
		if err := c.persistLocked(); err != nil {
			s.logger.Error(err, "Persisted container start", "containerID", r.Id)
		}
	}
	st, pid := c.rec.proto(), c.rec.Pid
	c.mu.Unlock()
	s.logger.V(2).Info("Started container", "containerID", r.Id)
	s.poststart(ctx, c.hooks, pid)
	return st, nil
}

// onExit runs on the reaper's goroutine when a container's init exits. It
// marks the pid gone at once, then, off the reaper, lets the output drain,
// records the exit, wakes the waiters and removes the cgroup.
func (s *service) onExit(c *container, ws unix.WaitStatus) {
	finished := time.Now()
	c.mu.Lock()
	c.reaped = true
	c.mu.Unlock()
	go func() {
		s.recordExit(c, ws, finished)
		// The container is over: its cgroup goes now, after the waiters
		// (a StopContainer) have the exit, not in Delete.
		if err := s.cg.Remove(c.cgroup); err != nil {
			s.logger.V(2).Info("Cgroup of an exited container left for Delete", "containerID", c.id, "err", err)
		}
		close(c.cleaned)
	}()
}

// recordExit lets the output drain, records the exit and wakes the
// waiters of a container whose init has exited.
func (s *service) recordExit(c *container, ws unix.WaitStatus, finished time.Time) {
	// A container is over when its init is: what it left behind (in a
	// pod-wide pid namespace its orphans go to the pause process, not
	// to the grave with it) is killed, as runc's delete does, so it
	// neither runs on nor holds the output pipes open.
	if err := s.cg.Kill(c.cgroup); err != nil {
		s.logger.V(2).Info("Could not kill what the container left", "containerID", c.id, "err", err)
	}
	drain(&c.copiers, c.outputs)
	oom := c.oomSeen.Load()
	if n, err := s.cg.OOMKills(c.cgroup); err == nil && n > c.oomBase {
		oom = true
	}
	c.endOOMWatch()
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.rec.Status
	_ = c.setStatusLocked(StatusExited)
	c.rec.FinishedAt, c.rec.ExitCode = finished.UnixNano(), exitCode(ws)
	switch {
	case oom:
		c.rec.Reason = ReasonOOMKilled
	case c.rec.ExitCode == 0:
		c.rec.Reason = ReasonCompleted
	default:
		c.rec.Reason = ReasonError
	}
	// c.proc is taken by Start: still here, no Start came (an exit
	// during one is Start's to record: it ran, or Start's error says why).
	if was == StatusCreated && c.proc != nil && c.rec.Message == "" {
		c.rec.Message = "exited before it was started"
	}
	if err := c.persistLocked(); err != nil {
		s.logger.Error(err, "Persisted container exit", "containerID", c.id)
	}
	if c.log != nil {
		_ = c.log.Close()
		c.log = nil
	}
	if c.proc != nil { // exited before it was started
		c.proc.Release()
	}
	c.proc = nil
	close(c.done)
	s.logger.V(2).Info("Container exited", "containerID", c.id, "exitCode", c.rec.ExitCode, "reason", c.rec.Reason)
}

// takeConsole makes a terminal container's pty master its output and, with
// stdin, its input. Stdin is a dup, so that closing it (stdin_once) leaves
// the terminal, and the container's session, alive.
func (c *container) takeConsole(stdin bool) error {
	master := c.proc.Console
	if master == nil {
		return nil
	}
	c.proc.Console = nil
	c.console, c.outputs = master, []*os.File{master}
	if !stdin {
		return nil
	}
	// Not Fd(): it would put the master in blocking mode.
	rc, err := master.SyscallConn()
	if err != nil {
		return fmt.Errorf("dup the terminal of %s: %w", c.id, err)
	}
	fd := -1
	if cerr := rc.Control(func(m uintptr) { fd, err = unix.FcntlInt(m, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dup the terminal of %s: %w", c.id, err)
	}
	c.stdin = os.NewFile(uintptr(fd), "console-stdin")
	return nil
}
