package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/shim"
	"github.com/crib-runtime/crib/runtime/shimapi"
	"github.com/crib-runtime/crib/sandbox"
)

// podShims starts, finds and stops the shim of each pod. A shim lives in
// <state>/shims/<first 16 hex of the pod id>: under the state dir, so after
// a reboot it is gone and the pod's containers report exited with reason
// Unknown; short, because its socket's path must fit a sockaddr_un (108
// bytes).
type podShims struct {
	binary string
	dir    string
	pods   *sandbox.Manager
	obs    shimObserver

	// mu guards clients.
	mu      sync.Mutex
	clients map[string]*shimapi.Client
}

// shimObserver learns what happens to shims (the daemon's metrics). crib
// never restarts a shim itself: a connection found ended and dialled again
// is a shim that came back (or whose connection broke); one that found
// nobody listening is a shim that is gone.
type shimObserver interface {
	ShimStarted()
	ShimConnectionLost()
	ShimRedialled()
	ShimGone()
}

func (s *podShims) shimDir(p *sandbox.Pod) string { return filepath.Join(s.dir, p.ID[:16]) }

// start is the sandbox's AfterSetup hook: the pod's shim, then its pause
// process when the pod shares one pid namespace.
func (s *podShims) start(ctx context.Context, p *sandbox.Pod) (retErr error) {
	if err := shim.Spawn(ctx, s.binary, p.ID, s.shimDir(p)); err != nil {
		return err
	}
	s.obs.ShimStarted()
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, s.Shutdown(context.WithoutCancel(ctx), p.ID))
		}
	}()
	c, err := s.dial(ctx, p)
	if err != nil || !p.SharePID {
		return err
	}
	// A namespace the pod takes from the host has no pin: the pause
	// process stays in the shim's (the host's) as every container does.
	join := map[string]string{}
	// The user namespace of a hostUsers: false pod is joined first, so the
	// pause's new pid namespace is owned by it: its containers, root only
	// there, must be able to join that pid namespace and mount its /proc.
	for kind, path := range map[string]string{"net": p.NetNS, "ipc": p.IPCNS, "uts": p.UTSNS, "user": p.UserNS} {
		if path != "" {
			join[kind] = path
		}
	}
	resp, err := c.StartPause(ctx, &shimapi.StartPauseRequest{Cgroup: p.Cgroup, Namespaces: join})
	if err != nil {
		return fmt.Errorf("start pause process: %w", err)
	}
	p.PausePID = int(resp.Pid)
	return nil
}

// rollback is the sandbox's BeforeTeardown hook. Only a Run that fails after
// the shim started (the pod still CREATING) stops it here: Stop keeps the
// shim, which holds the exit codes until RemovePodSandbox shuts it down.
func (s *podShims) rollback(ctx context.Context, p *sandbox.Pod) error {
	if p.State != sandbox.StateCreating {
		return nil
	}
	return s.Shutdown(ctx, p.ID)
}

// dial connects to a pod's shim once and keeps the connection. A
// connection that ended (its shim died) is dropped and dialled again; a
// socket nobody listens on is NotFound (shimapi.ErrShimGone), which the
// runtime reads as a dead shim and cleans up after.
func (s *podShims) dial(ctx context.Context, p *sandbox.Pod) (*shimapi.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	redial := false
	if c, ok := s.clients[p.ID]; ok {
		if !c.Closed() {
			return c, nil
		}
		delete(s.clients, p.ID)
		s.obs.ShimConnectionLost()
		redial = true
	}
	sock := filepath.Join(s.shimDir(p), "shim.sock")
	if _, err := os.Stat(sock); errors.Is(err, fs.ErrNotExist) {
		s.obs.ShimGone()
		return nil, fmt.Errorf("shim of pod %s: %w", p.ID, errdefs.ErrNotFound)
	}
	c, err := shimapi.Dial(ctx, sock)
	if errors.Is(err, shimapi.ErrShimGone) {
		s.obs.ShimGone()
	}
	if err != nil {
		return nil, fmt.Errorf("shim of pod %s: %w", p.ID, err)
	}
	if redial {
		s.obs.ShimRedialled()
	}
	s.clients[p.ID] = c
	return c, nil
}

// AttachSocket is where a pod's shim takes attach sessions.
func (s *podShims) AttachSocket(podID string) (string, error) {
	p, err := s.pods.Get(podID)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.shimDir(p), shimapi.AttachSocketName), nil
}

// Shim implements runtime.Shims.
func (s *podShims) Shim(ctx context.Context, podID string) (runtime.Shim, error) {
	p, err := s.pods.Get(podID)
	if err != nil {
		return nil, err
	}
	return s.dial(ctx, p)
}

// Gone implements cri.PodShims: nothing listens on the pod's shim socket
// (or it has none). A pod unknown, or a shim that cannot be told (a
// dial that timed out), is not gone.
func (s *podShims) Gone(ctx context.Context, podID string) bool {
	p, err := s.pods.Get(podID)
	if err != nil {
		return false
	}
	_, err = s.dial(ctx, p)
	return errors.Is(err, errdefs.ErrNotFound)
}

// Shutdown stops a pod's shim (and its pause process). A pod without a
// running shim is fine.
func (s *podShims) Shutdown(ctx context.Context, podID string) error {
	p, err := s.pods.Get(podID)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := s.dial(ctx, p)
	if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrUnavailable) {
		return s.removeDir(p)
	}
	if err != nil {
		return err
	}
	_, err = c.Shutdown(ctx, &shimapi.Empty{})
	s.mu.Lock()
	delete(s.clients, podID)
	s.mu.Unlock()
	_ = c.Close()
	if err != nil && !errors.Is(err, errdefs.ErrUnavailable) {
		return fmt.Errorf("shut down the shim of pod %s: %w", podID, err)
	}
	return s.removeDir(p)
}

// removeDir deletes a stopped shim's directory: its records went with it.
func (s *podShims) removeDir(p *sandbox.Pod) error {
	if err := os.RemoveAll(s.shimDir(p)); err != nil {
		return fmt.Errorf("remove the shim directory of pod %s: %w", p.ID, err)
	}
	return nil
}
