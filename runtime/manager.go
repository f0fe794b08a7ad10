package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Shim is what the container lifecycle needs from a pod's shim; the
// generated ttrpc client implements it.
type Shim interface {
	Create(context.Context, *shimapi.CreateRequest) (*shimapi.ContainerState, error)
	Start(context.Context, *shimapi.ContainerRequest) (*shimapi.ContainerState, error)
	Kill(context.Context, *shimapi.KillRequest) (*shimapi.Empty, error)
	Wait(context.Context, *shimapi.ContainerRequest) (*shimapi.ContainerState, error)
	State(context.Context, *shimapi.ContainerRequest) (*shimapi.ContainerState, error)
	Delete(context.Context, *shimapi.ContainerRequest) (*shimapi.Empty, error)
	ReopenLog(context.Context, *shimapi.ContainerRequest) (*shimapi.Empty, error)
	ExecSync(context.Context, *shimapi.ExecSyncRequest) (*shimapi.ExecSyncResponse, error)
	Update(context.Context, *shimapi.UpdateRequest) (*shimapi.Empty, error)
	List(context.Context, *shimapi.Empty) (*shimapi.ListResponse, error)
}

// Cgroups kills and removes containers' cgroups where their shim cannot:
// a shim that was killed (kill -9) left its containers running, reparented
// to init, in their cgroups beside the pod's. cgroups.Manager implements it.
type Cgroups interface {
	// Kill sends SIGKILL to every process in path and below; a missing
	// path is not an error.
	Kill(path string) error
	// Remove kills what is left in path and removes it; a missing path is
	// not an error.
	Remove(path string) error
}

// Shims finds the shim of a pod. ErrNotFound means the pod has none any more
// (its shim is gone): its containers are reported exited, reason Unknown.
type Shims interface {
	Shim(ctx context.Context, sandboxID string) (Shim, error)
}

// Manager owns container records under <root>/containers/<id>/:
//
//	container.json   the record (written atomically)
//	upper/ work/     the writable overlay layer
//	rootfs/          the mount point, used only inside the container's mount namespace
type Manager struct {
	dir   string
	shims Shims
	// IDMapDir is where containers of hostUsers: false pods get the paths
	// their init reaches (see prepareIDMap); set once before use, "" refuses
	// such containers.
	IDMapDir string
	// PodsDir holds each pod's files (sandbox's StateDir): a container of
	// a hostUsers: false pod gets its pod's directory bound in IDMapDir.
	PodsDir string
	// Cgroups, when set, stops and removes the containers of a pod whose
	// shim is gone through their cgroups; nil leaves them (tests).
	Cgroups Cgroups
	// Units, under the systemd cgroup driver, makes each container's
	// cgroup a scope unit; nil under cgroupfs.
	Units Units

	// mu guards records, guards, names and usage.
	mu      sync.Mutex
	records map[string]*Container
	// guards holds each recorded container's phase (guard.go): Start,
	// Stop, UpdateResources and Remove go through it.
	guards map[string]*guard
	// names maps sandboxID/name/attempt to the container holding it.
	names map[string]string
	// usage caches writable layer sizes (WritableUsage).
	usage map[string]layerUsage
	// removing counts background removals of writable layers and shim
	// deletes.
	removing sync.WaitGroup
	// exited holds containers a Wait saw exit (the events watcher waits on
	// every started one): Remove need not ask their shim first.
	exited map[string]bool
}

// Open loads every container record under root.
func Open(root string, shims Shims) (*Manager, error) {
	m := &Manager{dir: filepath.Join(root, "containers"), shims: shims,
		records: map[string]*Container{}, guards: map[string]*guard{}, names: map[string]string{}, usage: map[string]layerUsage{}, exited: map[string]bool{}}
	// 0700, and narrowed if an older crib made it 0711: other host users
	// must not reach a container's writable layer (see Start).
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open container store: %w", err)
	}
	if err := os.Chmod(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open container store: %w", err)
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, fmt.Errorf("open container store: %w", err)
	}
	for _, e := range entries {
		c, err := readRecord(filepath.Join(m.dir, e.Name(), "container.json"))
		if errors.Is(err, fs.ErrNotExist) {
			// A create that crashed before its record: nothing refers to it.
			_ = removeContainerDir(m.IDMapDir, filepath.Join(m.dir, e.Name()))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open container store: %w", err)
		}
		m.records[c.ID] = &c
		m.guards[c.ID] = newGuard(c.ID, PhaseCreated)
		m.names[nameKey(c.SandboxID, c.Name, c.Attempt)] = c.ID
	}
	return m, nil
}

func nameKey(sandbox, name string, attempt uint32) string {
	return fmt.Sprintf("%s/%s/%d", sandbox, name, attempt)
}

// NewID returns a fresh container ID: 64 hex characters.
func NewID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (m *Manager) containerDir(id string) string { return filepath.Join(m.dir, id) }

// RootfsPath is where a container's rootfs is mounted (inside its own mount
// namespace only).
func (m *Manager) RootfsPath(id string) string { return filepath.Join(m.containerDir(id), "rootfs") }

// get returns a copy of a record.
func (m *Manager) get(id string) (Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.records[id]; ok {
		return *c, nil
	}
	return Container{}, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
}

// Record returns a container's record, what it was created with, without
// asking its shim about its state.
func (m *Manager) Record(id string) (Container, error) { return m.get(id) }

// Resolve finds a container by full ID or unique ID prefix.
func (m *Manager) Resolve(idOrPrefix string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.records[idOrPrefix]; ok {
		return idOrPrefix, nil
	}
	var found []string
	for id := range m.records {
		if idOrPrefix != "" && strings.HasPrefix(id, idOrPrefix) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("container %s: %w", idOrPrefix, errdefs.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("container ID prefix %s matches %d containers: %w", idOrPrefix, len(found), errdefs.ErrInvalidArgument)
}

// enter waits until operation o may run on container id and enters its
// phase (guard.go); done ends it.
func (m *Manager) enter(ctx context.Context, id string, o op) (done func(ok bool), err error) {
	m.mu.Lock()
	g := m.guards[id]
	m.mu.Unlock()
	if g == nil {
		return nil, fmt.Errorf("%s container %s: %w", o, id, errdefs.ErrNotFound)
	}
	return g.acquire(ctx, o)
}

// shimOf returns the record and its pod's shim.
func (m *Manager) shimOf(ctx context.Context, id string) (Container, Shim, error) {
	c, err := m.get(id)
	if err != nil {
		return c, nil, err
	}
	s, err := m.shims.Shim(ctx, c.SandboxID)
	return c, s, err
}

// Status returns a container's record and live state. A container its
// shim does not know was never started; one whose shim is gone is exited
// with reason Unknown, and made so (killOrphans).
func (m *Manager) Status(ctx context.Context, id string) (State, error) {
	c, shim, err := m.shimOf(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) && c.ID != "" {
		if err := m.killOrphans(c, false); err != nil {
			return State{}, fmt.Errorf("status of container %s: %w", id, err)
		}
		return fromShim(c, nil), nil
	}
	if err != nil {
		return State{}, err
	}
	s, err := shim.State(ctx, &shimapi.ContainerRequest{Id: id})
	if errors.Is(err, errdefs.ErrNotFound) {
		return created(c), nil
	}
	if errors.Is(err, ttrpc.ErrClosed) {
		return fromShim(c, nil), nil
	}
	if err != nil {
		return State{}, fmt.Errorf("status of container %s: %w", id, err)
	}
	return fromShim(c, s), nil
}

// Sandbox returns the ID of a container's pod.
func (m *Manager) Sandbox(id string) (string, error) {
	c, err := m.get(id)
	return c.SandboxID, err
}

// InSandbox lists the IDs of a pod's containers.
func (m *Manager) InSandbox(sandboxID string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, c := range m.records {
		if c.SandboxID == sandboxID {
			ids = append(ids, id)
		}
	}
	return ids
}

// LayersInUse returns the image layer dirs (overlay lower dirs) that
// container records name, their rootfs's and their image volumes', whatever the containers' states: the image store
// keeps them after their image is removed (image.Pins). A created
// container still needs them to start; an exited one costs only their
// space until it is removed, which the kubelet does soon.
func (m *Manager) LayersInUse() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var dirs []string
	for _, c := range m.records {
		dirs = append(dirs, c.Layers...)
		dirs = append(dirs, c.VolumeLayers...)
	}
	return dirs
}

// StorageDir is where container writable layers live, for filesystem stats.
func (m *Manager) StorageDir() string { return m.dir }
