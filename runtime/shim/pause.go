package shim

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// pauseNamespaces are the pinned pod namespaces StartPause joins.
var pauseNamespaces = map[string]uint32{"net": unix.CLONE_NEWNET, "ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS, "user": unix.CLONE_NEWUSER}

// pauseProc is the pod's pause process: pid 1 of the pod-wide pid namespace.
type pauseProc struct {
	proc *launch.Process
	done chan struct{} // closed once reaped
}

// StartPause starts the pod's pause process in its pinned namespaces and a
// new pid namespace, placed in the pod's cgroup (which the daemon made).
// nsexec confines it before it runs (its own mount namespace with an empty
// read-only root, no capabilities, no fds): the pod's containers see it as
// pid 1, and /proc/1/root must not be the host's /.
func (s *service) StartPause(ctx context.Context, r *shimapi.StartPauseRequest) (*shimapi.StartPauseResponse, error) {
	o := launch.Options{Role: nsproto.RolePause, New: unix.CLONE_NEWPID}
	for kind, path := range r.Namespaces {
		flag, ok := pauseNamespaces[kind]
		if !ok || path == "" {
			return nil, fmt.Errorf("start pause: namespace %q at %q: %w", kind, path, errdefs.ErrInvalidArgument)
		}
		o.Join = append(o.Join, launch.Namespace{Type: flag, Path: path})
	}
	o = s.launchOptions(o, "pause")
	if r.Cgroup != "" {
		pl, err := s.cg.Placement(r.Cgroup)
		if err != nil {
			return nil, fmt.Errorf("start pause of pod %s: %w", s.podID, err)
		}
		defer pl.Close()
		o.Cgroup = pl
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pause != nil {
		return nil, fmt.Errorf("start pause of pod %s: pid %d runs: %w", s.podID, s.pause.proc.Pid, errdefs.ErrAlreadyExists)
	}
	pp := &pauseProc{done: make(chan struct{})}
	p, err := func() (*launch.Process, error) {
		// Ended however the launch ends, a recovered panic included: every
		// pod of the process reaps behind it.
		l := s.reaper.launching()
		defer l.done()
		o.Spawned, o.Bootstrapped = l.spawned, l.bootstrapped
		p, err := launch.Start(ctx, o)
		if err == nil {
			pp.proc = p
			l.watch(p.Pid, pp, func(ws unix.WaitStatus) { s.pauseExited(pp, ws) })
		}
		return p, err
	}()
	if err != nil {
		return nil, fmt.Errorf("start pause of pod %s: %w", s.podID, err)
	}
	s.pause = pp
	s.logger.V(2).Info("Started pause", "pid", p.Pid)
	return &shimapi.StartPauseResponse{Pid: int32(p.Pid)}, nil
}

// pauseExited forgets the pause process; runs on the reaper's goroutine.
func (s *service) pauseExited(pp *pauseProc, ws unix.WaitStatus) {
	pp.proc.Release()
	close(pp.done)
	go func() {
		s.mu.Lock()
		if s.pause == pp {
			s.pause = nil
		}
		s.mu.Unlock()
		s.logger.V(2).Info("Pause exited", "pid", pp.proc.Pid, "exitCode", exitCode(ws))
	}()
}

// stop kills the pause process and waits (up to timeout) until reaped.
func (pp *pauseProc) stop(timeout time.Duration) {
	_ = pp.proc.Signal(unix.SIGKILL)
	select {
	case <-pp.done:
	case <-time.After(timeout):
	}
}
