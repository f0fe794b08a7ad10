package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/ocihook"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"), in runc's
// order, around a container's start:
//
//	Create: cgroup, launch; the init makes its mounts and stops
//	        prestart, createRuntime    here, in the shim's namespaces (RuntimeHooks)
//	        createContainer            in the init: container's namespaces, before pivot_root
//	        pivot_root, …, Ready
//	Start:  startContainer             in the init: after pivot_root, just before execve
//	        execve
//	        poststart                  here; a failure is logged, the container runs on
//	Delete: destroy, then poststop     here; failures are logged
//
// A failure up to startContainer fails the Create or Start call, which
// are both the daemon's StartContainer, and leaves nothing behind.
//
// Hooks are host binaries that run as root. They reach a spec only from
// root-owned configuration (NRI plugins, CDI spec directories) through the
// daemon, never from a CRI client's request: cri/spec builds no hooks.

// hookBundle is the bundle directory of a container with hooks, under the
// pod's directory: the state's "bundle", where hooks (nvidia-cdi-hook and
// the like) read config.json to find the rootfs. It holds the spec as the
// shim got it, and goes with the container in Delete.
func hookBundle(podDir, id string) string { return filepath.Join(podDir, "bundles", id) }

// hooksCleanupTimeout bounds the poststop hooks of a failed Create, whose
// caller may have gone.
const hooksCleanupTimeout = time.Minute

// hookSet is what a container's hooks need after Create: the hooks and
// what their state carries. Nil for a container without hooks.
type hookSet struct {
	hooks       *specs.Hooks
	id, bundle  string
	annotations map[string]string
	// poststop runs once, whichever Delete gets there.
	poststop sync.Once
}

// newHookSet returns the container's hooks, nil when it has none.
func newHookSet(spec *specs.Spec, id, bundle string) *hookSet {
	if len(ocihook.Each(spec.Hooks)) == 0 {
		return nil
	}
	return &hookSet{hooks: spec.Hooks, id: id, bundle: bundle, annotations: spec.Annotations}
}

// validateHooks refuses, before anything is made, a hook that could not
// run: a relative path, a timeout that is not positive.
func validateHooks(h *specs.Hooks) error {
	for _, n := range ocihook.Each(h) {
		if err := ocihook.Validate(n.Hook); err != nil {
			return fmt.Errorf("%s: %w: %w", n, err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func (h *hookSet) state(status specs.ContainerState, pid int) specs.State {
	return specs.State{Version: specs.Version, ID: h.id, Status: status, Pid: pid, Bundle: h.bundle, Annotations: h.annotations}
}

// initHooks is what the init takes part in; nil when it has nothing to do,
// so that a spec with only poststart or poststop hooks still goes to an
// init of any version.
func (h *hookSet) initHooks() *initmsg.Hooks {
	if h == nil {
		return nil
	}
	hk := h.hooks
	// Prestart is deprecated by the spec, and still what many tools install.
	waits := len(hk.Prestart)+len(hk.CreateRuntime) > 0
	if !waits && len(hk.CreateContainer)+len(hk.StartContainer) == 0 {
		return nil
	}
	return &initmsg.Hooks{Runtime: waits, CreateContainer: hk.CreateContainer, StartContainer: hk.StartContainer,
		State: h.state("", 0)}
}

// runHooks runs hooks of one kind in order and stops at the first that fails.
func (s *service) runHooks(ctx context.Context, h *hookSet, kind string, hooks []specs.Hook, status specs.ContainerState, pid int) error {
	if len(hooks) == 0 {
		return nil
	}
	state, err := json.Marshal(h.state(status, pid))
	if err != nil {
		return fmt.Errorf("%s hooks: encode state: %w", kind, err)
	}
	for i, hook := range hooks {
		start := time.Now()
		err := ocihook.Run(ctx, hook, state, ocihook.Options{Dir: h.bundle, Fork: s.reaper.forkUnreaped})
		if err != nil {
			return fmt.Errorf("%s hook #%d: %w", kind, i, err)
		}
		s.logger.V(4).Info("Ran OCI hook", "containerID", h.id, "kind", kind, "path", hook.Path, "duration", time.Since(start))
	}
	return nil
}

// runtimeHooks is launch's RuntimeHooks: prestart (deprecated by the spec,
// still what many tools install), then createRuntime, with the state
// "creating" and the init's pid.
func (s *service) runtimeHooks(ctx context.Context, h *hookSet) func(pid int) error {
	if ih := h.initHooks(); ih == nil || !ih.Runtime {
		return nil
	}
	return func(pid int) error {
		if err := s.runHooks(ctx, h, ocihook.Prestart, h.hooks.Prestart, specs.StateCreating, pid); err != nil {
			return err
		}
		return s.runHooks(ctx, h, ocihook.CreateRuntime, h.hooks.CreateRuntime, specs.StateCreating, pid)
	}
}

// warnHooks runs every hook of a kind whose failure the spec makes a
// warning (poststart, poststop): each is logged and the rest still run.
func (s *service) warnHooks(ctx context.Context, h *hookSet, kind string, hooks []specs.Hook, status specs.ContainerState, pid int) {
	for i, hook := range hooks {
		if err := s.runHooks(ctx, h, kind, []specs.Hook{hook}, status, pid); err != nil {
			s.logger.Error(err, "OCI hook failed; the container's lifecycle goes on", "containerID", h.id, "kind", kind, "index", i)
		}
	}
}

// poststart runs after the user's process started. runc kills the
// container when one fails; the spec (runtime.md, Lifecycle) and crun log
// a warning and go on, which is what crib does.
func (s *service) poststart(ctx context.Context, h *hookSet, pid int) {
	if h != nil {
		s.warnHooks(ctx, h, ocihook.Poststart, h.hooks.Poststart, specs.StateRunning, pid)
	}
}

// poststop runs once the container is destroyed (or its Create failed
// after its init was launched, as runc runs them after a failed create),
// then removes the bundle. Failures are logged.
func (s *service) poststop(ctx context.Context, h *hookSet) error {
	if h == nil {
		return nil
	}
	// Pid 0, as runc sends for a stopped container: the init's pid was
	// reaped and may be another process's by now.
	h.poststop.Do(func() { s.warnHooks(ctx, h, ocihook.Poststop, h.hooks.Poststop, specs.StateStopped, 0) })
	if err := os.RemoveAll(h.bundle); err != nil {
		return fmt.Errorf("remove hooks' bundle: %w", err)
	}
	return nil
}

// writeBundle writes the container's spec as config.json in its bundle.
func writeBundle(dir string, spec *specs.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("hooks' bundle: encode spec: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("hooks' bundle: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("hooks' bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("hooks' bundle: %w", err)
	}
	return nil
}

// loadHookSet reads the hooks of a container a previous shim created
// from its bundle, for its poststop hooks; nil without a bundle.
func loadHookSet(podDir, id string) (*hookSet, error) {
	dir := hookBundle(podDir, id)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	return &hookSet{hooks: spec.Hooks, id: id, bundle: dir, annotations: spec.Annotations}, nil
}

// setHooks prepares o for a container with hooks: its bundle written, the
// init told which hooks it runs, the launch which it waits for. Its undo
// removes the bundle, after the poststop hooks when the init was launched
// (runc runs them after a failed create too).
func (s *service) setHooks(ctx context.Context, o *launch.Options, c *container, spec *specs.Spec) (undo func(launched bool) error, err error) {
	h := c.hooks
	if h == nil {
		return func(bool) error { return nil }, nil
	}
	if err := writeBundle(h.bundle, spec); err != nil {
		return nil, errors.Join(err, os.RemoveAll(h.bundle))
	}
	o.Config.Hooks = h.initHooks()
	o.RuntimeHooks = s.runtimeHooks(ctx, h)
	return func(launched bool) error {
		if !launched {
			return os.RemoveAll(h.bundle)
		}
		// As after a delete: the init is gone, its cgroup too. The
		// caller may have gone, which may be why the create failed.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hooksCleanupTimeout)
		defer cancel()
		return s.poststop(ctx, h)
	}, nil
}

// forkUnreaped is the hooks' ocihook.Forker: the shim's SIGCHLD loop reaps
// any child with waitid(P_ALL), so the hook is registered as a tracked
// process under the launch lock (no such pass between its fork and its
// registration) and held, never reaped, until the runner asks for its
// status: until then its pid names its process group for a kill.
func (r *reaper) forkUnreaped(fork func() (int, error)) (func() unix.WaitStatus, error) {
	r.launchMu.RLock()
	pid, err := fork()
	if err != nil {
		r.launchMu.RUnlock()
		return nil, err
	}
	exited := make(chan unix.WaitStatus, 1)
	r.mu.Lock()
	r.waiters[pid] = waiter{owner: exited, fn: func(ws unix.WaitStatus) { exited <- ws }}
	r.held[pid]++
	r.mu.Unlock()
	r.launchMu.RUnlock()
	r.kickPass()
	return func() unix.WaitStatus {
		r.unhold(pid)
		return <-exited
	}, nil
}
