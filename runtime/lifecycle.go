package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Create reserves the container's name and records it, spec included: a
// created container is only its record, as in containerd, until Start hands
// it to the pod's shim. On failure nothing is left: no record, no directory,
// no name.
func (m *Manager) Create(ctx context.Context, c Container, o CreateOptions) (_ State, retErr error) {
	key := nameKey(c.SandboxID, c.Name, c.Attempt)
	m.mu.Lock()
	if other, ok := m.names[key]; ok {
		m.mu.Unlock()
		return State{}, fmt.Errorf("container name %q (attempt %d) in pod %s is taken by container %s: %w",
			c.Name, c.Attempt, c.SandboxID, other, errdefs.ErrAlreadyExists)
	}
	m.names[key] = c.ID
	m.mu.Unlock()
	dir := m.containerDir(c.ID)
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(dir)
			m.mu.Lock()
			delete(m.names, key)
			m.mu.Unlock()
		}
	}()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return State{}, fmt.Errorf("create container %s: %w", c.ID, err)
	}
	o.Spec.Root.Path = m.RootfsPath(c.ID)
	spec, err := marshalSpec(o.Spec)
	if err != nil {
		return State{}, fmt.Errorf("create container %s: encode spec: %w", c.ID, err)
	}
	c.Version, c.Spec, c.Layers, c.DevShm, c.VolumeLayers = recordVersion, spec, o.Layers, o.DevShm, o.VolumeLayers
	c.UserNamespace = userNamespaceOf(o.Spec)
	if err := statefile.WriteJSON(filepath.Join(dir, "container.json"), &c); err != nil {
		return State{}, fmt.Errorf("create container %s: %w", c.ID, err)
	}
	m.mu.Lock()
	m.records[c.ID] = &c
	m.guards[c.ID] = newGuard(c.ID, PhaseCreated)
	m.mu.Unlock()
	return created(c), nil
}

// Start hands a created container to its pod's shim, which sets it up
// (cgroup, rootfs, mounts, namespaces: a bad mount or a missing command
// fails here) and runs its process. It returns the container's pod. It
// waits for an operation in flight (a Remove, an update); starting a
// container this daemon started is FailedPrecondition.
func (m *Manager) Start(ctx context.Context, id string, before ...BeforeExec) (_ string, retErr error) {
	done, err := m.enter(ctx, id, opStart)
	if err != nil {
		return "", err
	}
	defer func() { done(retErr == nil) }()
	c, shim, err := m.shimOf(ctx, id)
	if err != nil {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	dir := m.containerDir(id)
	// A start cut short (daemon restart) may have left idmapped binds.
	if err := releaseIDMaps(m.IDMapDir, id, false); err != nil {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	// The upper dir's mode becomes the mode of the container's "/"
	// (overlayfs takes the root's attributes from the upper layer), so it
	// stays 0755 for the container's non-root users; the 0700 container
	// dir above it is what keeps host users out, so that no host user can
	// run a setuid file a container wrote. The work dir and the mount
	// point are only ever used by root: the mount point only inside the
	// container's mount namespace, where the overlay covers it.
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"upper", 0o755}, {"work", 0o700}, {"rootfs", 0o700}} {
		if err := os.Mkdir(filepath.Join(dir, d.name), d.mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("start container %s: %w", id, err)
		}
	}
	if err := m.checkPidTarget(ctx, c); err != nil {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	podDir := ""
	if m.PodsDir != "" {
		podDir = filepath.Join(m.PodsDir, c.SandboxID)
	}
	im, err := prepareIDMap(dir, m.IDMapDir, podDir, c.UserNamespace, c.Spec, c.Layers, c.DevShm)
	if err != nil {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	created, err := shim.Create(ctx, &shimapi.CreateRequest{
		Id: c.ID, Spec: im.spec, Lower: im.layers, Upper: im.upper, Work: im.work,
		DevShm: im.devShm, RdtClass: c.RDTClass, LogPath: c.LogPath, LogDir: c.LogDir, Stdin: c.Stdin, StdinOnce: c.StdinOnce, Tty: c.Tty,
	})
	// Once Create returns, the init has mounted the rootfs and volumes
	// (or failed): the idmapped binds have done their work.
	if rerr := im.release(); rerr != nil && err == nil {
		err = rerr
	}
	// AlreadyExists: a start that was cut short after the hand-over
	// (daemon restart) is taken up where it stopped.
	if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	// The target ran with its pid before the shim opened /proc/<pid>/ns/pid
	// and still does after: a live process keeps its pid, so the namespace
	// joined was the target's. Otherwise, or when a BeforeExec refuses,
	// the process, stopped before execve, goes without having run
	// anything.
	err = m.checkPidTarget(ctx, c)
	if err == nil {
		// Before NRI's StartContainer: plugins see the process in the
		// unit it stays in.
		err = m.adopt(ctx, shim, c, created)
	}
	for _, f := range before {
		if err == nil {
			// 0 when a start cut short by a restart is taken up.
			err = f(ctx, int(created.GetPid()))
		}
	}
	if err != nil {
		if _, derr := shim.Delete(ctx, &shimapi.ContainerRequest{Id: id}); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete from the shim: %w", derr))
		} else if rerr := m.releaseUnit(context.WithoutCancel(ctx), c); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	if _, err := shim.Start(ctx, &shimapi.ContainerRequest{Id: id}); err != nil {
		return "", fmt.Errorf("start container %s: %w", id, err)
	}
	return c.SandboxID, nil
}

// BeforeExec runs in Start once the container's process exists, stopped
// before execve, with its pid (NRI's StartContainer); an error ends the
// start and the process goes, the container stays created.
type BeforeExec func(ctx context.Context, pid int) error

// checkPidTarget checks that the container whose pid namespace c joins
// (pid mode TARGET) runs with the pid c's spec names.
func (m *Manager) checkPidTarget(ctx context.Context, c Container) error {
	if c.PidTarget == "" {
		return nil
	}
	st, err := m.Status(ctx, c.PidTarget)
	if err != nil {
		return fmt.Errorf("pid namespace target %s: %w", c.PidTarget, err)
	}
	if st.Status != StatusRunning || st.Pid != c.PidTargetPid {
		return fmt.Errorf("pid namespace target %s no longer runs as pid %d: %w", c.PidTarget, c.PidTargetPid, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Stop sends the container's stop signal, waits up to timeout, then kills
// every process in it. Stopping an exited container succeeds. A Stop
// during a Start waits for it, so what Start ran is stopped; Stops run
// side by side (a shorter one need not wait for a longer one).
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	done, err := m.enter(ctx, id, opStop)
	if err != nil {
		return err
	}
	defer done(true)
	return m.stop(ctx, id, timeout)
}

// stop is Stop for a caller that holds the container (Remove).
func (m *Manager) stop(ctx context.Context, id string, timeout time.Duration) error {
	c, shim, err := m.shimOf(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) && c.ID != "" {
		// The shim is gone. After a reboot so are the processes; after a
		// kill of the shim they still run, and only their cgroup reaches
		// them.
		return m.killOrphans(c, false)
	}
	if err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	st, err := shim.State(ctx, &shimapi.ContainerRequest{Id: id})
	if err != nil || st.Status != shimapi.Status_RUNNING {
		return ignoreNotFound(err)
	}
	if timeout > 0 {
		sig := c.StopSignal
		if sig == 0 {
			sig = int(syscall.SIGTERM)
		}
		if _, err := shim.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(sig)}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("stop container %s: signal %d: %w", id, sig, err)
		}
		waitCtx, cancel := context.WithTimeout(ctx, timeout)
		_, err := shim.Wait(waitCtx, &shimapi.ContainerRequest{Id: id})
		cancel()
		if err == nil {
			return nil
		}
	}
	if _, err := shim.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(syscall.SIGKILL), All: true}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("stop container %s: kill: %w", id, err)
	}
	if _, err := shim.Wait(ctx, &shimapi.ContainerRequest{Id: id}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("stop container %s: wait: %w", id, err)
	}
	return nil
}

func ignoreNotFound(err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}

// Remove kills a container if it still runs, deletes it from its shim and
// removes its record and writable layer; it returns the container's pod.
// Removing an unknown container is ErrNotFound (the CRI layer makes that a
// success). It waits for operations in flight: a Start's container is
// stopped and deleted from the shim, not left there.
func (m *Manager) Remove(ctx context.Context, id string) (_ string, retErr error) {
	done, err := m.enter(ctx, id, opRemove)
	if err != nil {
		return "", err
	}
	defer func() { done(retErr == nil) }()
	c, err := m.get(id)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	exited := m.exited[id]
	m.mu.Unlock()
	if !exited {
		if err := m.deleteFromShim(ctx, c); err != nil {
			return "", fmt.Errorf("remove container %s: %w", id, err)
		}
	}
	// With the record still there, so that a failure is retried; an
	// exited container's processes are gone, whatever its shim still
	// keeps.
	if err := m.releaseUnit(ctx, c); err != nil {
		return "", fmt.Errorf("remove container %s: %w", id, err)
	}
	// The record goes next: a crash after it leaves only a directory
	// without a record, which Open removes.
	if err := os.Remove(filepath.Join(m.containerDir(id), "container.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("remove container %s: %w", id, err)
	}
	m.mu.Lock()
	delete(m.records, id)
	delete(m.guards, id) // waiters hold it and see PhaseRemoved
	delete(m.names, nameKey(c.SandboxID, c.Name, c.Attempt))
	delete(m.usage, id)
	delete(m.exited, id)
	m.mu.Unlock()
	// The writable layer goes in the background: without its record it
	// is nothing, and a daemon that stops first finds it at Open. So does
	// an exited container's entry in its shim: the shim forgets it at the
	// latest with the pod.
	m.removing.Add(1)
	go func() {
		defer m.removing.Done()
		logger := klog.FromContext(ctx)
		if exited {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if err := m.deleteFromShim(bg, c); err != nil {
				logger.V(2).Info("Shim keeps a removed container until its pod goes", "containerID", id, "err", err)
			}
			cancel()
		}
		if err := removeContainerDir(m.IDMapDir, m.containerDir(id)); err != nil {
			logger.Error(err, "Remove writable layer; retried at the next start", "containerID", id)
		}
	}()
	return c.SandboxID, nil
}

// deleteFromShim deletes the container from its pod's shim, stopping it
// first if it still runs (the kubelet normally stopped it already).
func (m *Manager) deleteFromShim(ctx context.Context, c Container) error {
	shim, err := m.shims.Shim(ctx, c.SandboxID)
	if errors.Is(err, errdefs.ErrNotFound) {
		// The shim is gone; what it left of the container (its
		// processes, its cgroup) goes here.
		return m.killOrphans(c, true)
	}
	if err != nil {
		return err
	}
	req := &shimapi.ContainerRequest{Id: c.ID}
	_, err = shim.Delete(ctx, req)
	if errors.Is(err, errdefs.ErrFailedPrecondition) {
		if err := m.stop(ctx, c.ID, 0); err != nil {
			return err
		}
		_, err = shim.Delete(ctx, req)
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		// The shim does not know it: never handed over, or a Create cut
		// short by a daemon kill (the shim's context ends with the
		// connection) whose cleanup may have left the cgroup. The
		// cgroup is the container's own: it goes here.
		return m.killOrphans(c, true)
	}
	return err
}

// killOrphans kills the processes of a container whose shim is gone, and
// with remove its cgroup too. The container's cgroup is its own
// (<parent>/<container id>), so nothing else is reached. Status and List
// kill too: a container reported exited must not run on (the kubelet
// would start its successor beside it), and without its shim nothing
// records its exit or takes its output any more; containerd's cleanup of
// a dead shim kills the same way.
func (m *Manager) killOrphans(c Container, remove bool) error {
	if m.Cgroups == nil || c.Cgroup == "" {
		return nil
	}
	// A damaged record must not name the pod's or the kubelet's cgroup.
	if !cgroups.IsLeaf(c.Cgroup, c.ID) {
		return fmt.Errorf("container %s, whose shim is gone: its cgroup %q is not its own: %w", c.ID, c.Cgroup, errdefs.ErrFailedPrecondition)
	}
	do, what := m.Cgroups.Kill, "kill"
	if remove {
		do, what = m.Cgroups.Remove, "remove"
	}
	if err := do(c.Cgroup); err != nil {
		return fmt.Errorf("%s the cgroup of container %s, whose shim is gone: %w", what, c.ID, err)
	}
	return nil
}

// Drain waits for Remove's background work: writable layers and the shim
// deletes of exited containers.
func (m *Manager) Drain() { m.removing.Wait() }

// Wait blocks until the container has exited (or ctx ends) and returns its
// final state.
func (m *Manager) Wait(ctx context.Context, id string) (State, error) {
	c, shim, err := m.shimOf(ctx, id)
	if err != nil {
		return State{}, err
	}
	s, err := shim.Wait(ctx, &shimapi.ContainerRequest{Id: id})
	if err != nil {
		return State{}, fmt.Errorf("wait for container %s: %w", id, err)
	}
	m.mu.Lock()
	if _, ok := m.records[id]; ok {
		m.exited[id] = true
	}
	m.mu.Unlock()
	return fromShim(c, s), nil
}

// UpdateResources applies new limits to a running or created container and
// records them for ContainerStatus. It waits for a Start in flight, so the
// limits reach the container whichever way the two went.
func (m *Manager) UpdateResources(ctx context.Context, id string, r *specs.LinuxResources) error {
	done, err := m.enter(ctx, id, opUpdate)
	if err != nil {
		return err
	}
	defer done(true)
	c, shim, err := m.shimOf(ctx, id)
	if err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	// A CRI update carries no block I/O settings: the class's stay, in the
	// record and in the spec a Start still to come hands over.
	if r != nil && r.BlockIO == nil && c.Resources != nil && c.Resources.BlockIO != nil {
		kept := *r
		kept.BlockIO = c.Resources.BlockIO
		r = &kept
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	// systemd first, then the files: systemd writes its spelling of the
	// limits, the shim the exact ones.
	if err := m.updateUnit(ctx, c, r); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	// Not started yet (NotFound), the limits go into the spec Start hands
	// over; started, the recorded spec follows too, as it is what a
	// verbose ContainerStatus shows as the runtime spec.
	if _, err = shim.Update(ctx, &shimapi.UpdateRequest{Id: id, Resources: data}); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	if c.Spec, err = withResources(c.Spec, r); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	c.Resources = r
	if err := statefile.WriteJSON(filepath.Join(m.containerDir(id), "container.json"), &c); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	m.mu.Lock()
	if _, ok := m.records[id]; ok {
		m.records[id] = &c
	}
	m.mu.Unlock()
	return nil
}

// ReopenLog asks the shim to reopen the container's log file.
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	_, shim, err := m.shimOf(ctx, id)
	if err == nil {
		_, err = shim.ReopenLog(ctx, &shimapi.ContainerRequest{Id: id})
	}
	if err != nil {
		return fmt.Errorf("reopen log of container %s: %w", id, err)
	}
	return nil
}
