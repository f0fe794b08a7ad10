package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups/ocires"
	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// classPlacer puts processes in RDT classes of service; resctrlPlacer in
// production, nil on a node without resctrl.
type classPlacer interface {
	Place(class, containerID string, pid int) (warning, err error)
	RemoveMonGroup(class, containerID string) error
}

// service implements shimapi.ShimService for one pod, with what the
// process's pods share.
type service struct {
	shared
	podID  string
	dir    string // the pod's: sockets and container records
	logger klog.Logger
	// release stops serving the pod (group.release), once: Shutdown.
	release     func()
	releaseOnce sync.Once

	// mu guards containers, reserved and pause.
	mu         sync.Mutex
	containers map[string]*container
	reserved   map[string]bool // ids being created
	pause      *pauseProc
}

var _ shimapi.ShimService = (*service)(nil)

// get returns a known container or NotFound.
func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// State returns one container's state.
func (s *service) State(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.proto(), nil
}

// List returns every container, sorted by id.
func (s *service) List(context.Context, *shimapi.Empty) (*shimapi.ListResponse, error) {
	s.mu.Lock()
	all := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		all = append(all, c)
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b *container) int { return strings.Compare(a.id, b.id) })
	resp := &shimapi.ListResponse{}
	for _, c := range all {
		c.mu.Lock()
		resp.Containers = append(resp.Containers, c.rec.proto())
		c.mu.Unlock()
	}
	return resp, nil
}

// Wait returns once the container has exited and its output is in the log.
func (s *service) Wait(ctx context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for container %s: %w", r.Id, ctx.Err())
	}
	return s.State(ctx, r)
}

// Kill signals the container's init, or with All every process in its
// cgroup. Signalling an exited container's init is FailedPrecondition.
func (s *service) Kill(_ context.Context, r *shimapi.KillRequest) (*shimapi.Empty, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	sig := syscall.Signal(r.Signal)
	if sig <= 0 || sig > 64 {
		return nil, fmt.Errorf("kill container %s: signal %d: %w", r.Id, r.Signal, errdefs.ErrInvalidArgument)
	}
	if r.All {
		if err := s.killAll(c, sig); err != nil {
			return nil, fmt.Errorf("kill processes of container %s: %w", r.Id, err)
		}
		return &shimapi.Empty{}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Pinned as the container's own process: until released it is not
	// reaped, so its pid cannot name another process.
	unpin, pinned := s.reaper.pin(c.rec.Pid, c)
	defer unpin()
	if !pinned || c.reaped || c.rec.Status == StatusExited {
		return nil, fmt.Errorf("kill container %s: %s: %w", r.Id, c.rec.Status, errdefs.ErrFailedPrecondition)
	}
	if err := unix.Kill(c.rec.Pid, sig); err != nil {
		return nil, fmt.Errorf("kill container %s (pid %d) with %v: %w", r.Id, c.rec.Pid, sig, err)
	}
	return &shimapi.Empty{}, nil
}

// killAll signals every process in the container's cgroup: SIGKILL through
// the cgroup (cgroup.kill, or freeze and kill on v1), other signals process
// by process from cgroup.procs, through pidfds.
func (s *service) killAll(c *container, sig syscall.Signal) error {
	if sig == unix.SIGKILL {
		return s.cg.Kill(c.cgroup)
	}
	return signalTree(s.host, c.cgroup, sig)
}

// Delete forgets an exited or created container: a created one's waiting
// init is killed first. It removes the cgroup (where the exit path could
// not), the RDT monitoring group and the state file.
func (s *service) Delete(ctx context.Context, r *shimapi.ContainerRequest) (*shimapi.Empty, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	status, proc := c.rec.Status, c.proc
	c.mu.Unlock()
	switch {
	case status == StatusRunning:
		return nil, fmt.Errorf("delete container %s: running: %w", r.Id, errdefs.ErrFailedPrecondition)
	case status == StatusCreated && proc != nil:
		_ = proc.Signal(unix.SIGKILL) // pidfd-based: safe even if it already exited
	}
	select {
	case <-c.cleaned:
	case <-ctx.Done():
		return nil, fmt.Errorf("delete container %s: %w", r.Id, ctx.Err())
	}
	var errs []error
	// Normally gone already (the exit path): then this finds nothing.
	if err := s.cg.Remove(c.cgroup); err != nil {
		errs = append(errs, err)
	}
	if s.classes != nil && c.class != "" {
		if err := s.classes.RemoveMonGroup(c.class, c.id); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	errs = append(errs, c.closeIOLocked())
	c.mu.Unlock()
	if err := os.Remove(c.file); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if errors.Join(errs...) == nil {
		// Destroyed: its poststop hooks (failures logged), then its bundle.
		errs = append(errs, s.poststop(ctx, c.hooks))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("delete container %s: %w", r.Id, err)
	}
	s.mu.Lock()
	delete(s.containers, r.Id)
	s.mu.Unlock()
	s.logger.V(2).Info("Deleted container", "containerID", r.Id)
	return &shimapi.Empty{}, nil
}

// ReopenLog reopens the container's log file after the kubelet rotated it.
func (s *service) ReopenLog(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.Empty, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.log == nil {
		return nil, fmt.Errorf("reopen log of container %s: %s, no log open: %w", r.Id, c.rec.Status, errdefs.ErrFailedPrecondition)
	}
	if err := c.log.Reopen(); err != nil {
		return nil, fmt.Errorf("reopen log of container %s: %w", r.Id, err)
	}
	return &shimapi.Empty{}, nil
}

// Shutdown stops serving the pod once no container holds a process: it
// kills the pause process and closes the pod's sockets after the reply.
// The process itself ends on Group.Exit.
func (s *service) Shutdown(context.Context, *shimapi.Empty) (*shimapi.Empty, error) {
	s.mu.Lock()
	var busy []string
	for id, c := range s.containers {
		if !c.exited() {
			busy = append(busy, id)
		}
	}
	pause := s.pause
	s.mu.Unlock()
	if len(busy) > 0 {
		slices.Sort(busy)
		return nil, fmt.Errorf("shut down shim of pod %s: containers %v still run: %w", s.podID, busy, errdefs.ErrFailedPrecondition)
	}
	if pause != nil {
		pause.stop(5 * time.Second)
	}
	s.releaseOnce.Do(s.release)
	return &shimapi.Empty{}, nil
}

// load reads the records of a previous shim of this pod. Containers that
// were created or running lost their waiter and their stdio with it, so
// they are killed (their cgroup) and reported exited with ReasonUnknown.
func (s *service) load() error {
	files, err := filepath.Glob(filepath.Join(s.dir, "containers", "*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		var rec record
		if err := statefile.ReadJSON(f, &rec); err != nil {
			s.logger.Error(err, "Skipped unreadable container state", "file", f)
			continue
		}
		if rec.Version != recordVersion {
			s.logger.Error(statefile.ErrVersion, "Skipped container state", "file", f, "version", rec.Version)
			continue
		}
		hooks, err := loadHookSet(s.dir, rec.ID)
		if err != nil {
			s.logger.Error(err, "Lost the poststop hooks of a container of a previous shim", "containerID", rec.ID)
		}
		c := &container{id: rec.ID, cgroup: rec.Cgroup, class: rec.RDTClass, file: f, done: make(chan struct{}),
			cleaned: make(chan struct{}), rec: rec, reaped: true, subs: map[*attachSub]shimapi.AttachHeader{}, hooks: hooks}
		close(c.done)
		close(c.cleaned) // Delete removes the cgroup
		if rec.Status != StatusExited {
			if err := s.cg.Kill(rec.Cgroup); err != nil {
				s.logger.Error(err, "Killed container of a previous shim", "containerID", rec.ID)
			}
			c.rec.Status, c.rec.ExitCode, c.rec.Reason = StatusExited, 255, ReasonUnknown
			c.rec.FinishedAt = time.Now().UnixNano()
			c.rec.Message = "the shim restarted and lost the container's stdio and exit status; its processes were killed"
			if err := c.persistLocked(); err != nil {
				return err
			}
			s.logger.V(2).Info("Reported container of a previous shim as exited", "containerID", rec.ID, "was", rec.Status)
		}
		s.containers[rec.ID] = c
	}
	return nil
}

// launchOptions adds what every launch of the pod shares: the sealed
// binary, and init logs re-emitted with the container id.
func (s *service) launchOptions(o launch.Options, id string) launch.Options {
	o.Binary = s.binary
	logger := s.logger.WithValues("containerID", id)
	o.Log = func(line string) {
		// Warnings (a seccomp rule skipped) change what the container may
		// do: log them where an operator sees them.
		if strings.HasPrefix(line, `{"level":"warning"`) {
			logger.Info("Container init warned", "line", line)
			return
		}
		logger.V(4).Info("Container init logged", "line", line)
	}
	return o
}

// Update applies new limits (OCI linux.resources, JSON) to a container's
// cgroup; the cgroups manager writes them in the order the kernel accepts.
func (s *service) Update(_ context.Context, r *shimapi.UpdateRequest) (*shimapi.Empty, error) {
	c, err := s.get(r.Id)
	if err != nil {
		return nil, err
	}
	var lr specs.LinuxResources
	if err := json.Unmarshal(r.Resources, &lr); err != nil {
		return nil, fmt.Errorf("update container %s: resources: %v: %w", r.Id, err, errdefs.ErrInvalidArgument)
	}
	res, err := ocires.Convert(&lr)
	if err != nil {
		return nil, fmt.Errorf("update container %s: %w", r.Id, err)
	}
	if err := s.cg.Update(c.cgroup, res); err != nil {
		return nil, fmt.Errorf("update container %s: %w", r.Id, err)
	}
	return &shimapi.Empty{}, nil
}
