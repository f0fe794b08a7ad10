package shimclient

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Observer learns what happens to shims (the daemon's metrics). crib
// never restarts a shim itself: a connection found ended and dialled again
// is a shim that came back (or whose connection broke); one that found
// nobody listening is a shim that is gone.
type Observer interface {
	ShimStarted()
	ShimConnectionLost()
	ShimRedialled()
	ShimGone()
}

// Shims starts, finds and stops the shim of each pod, by pod ID. A pod's
// shim directory is <dir>/<first 16 hex of the pod id>: dir is under the
// state dir, so after a reboot it is gone and the pod's containers report
// exited with reason Unknown; short, because its sockets' paths must fit a
// sockaddr_un (108 bytes). The process that serves a pod there serves up
// to perShim pods, each in its own directory (groups).
type Shims struct {
	dir    string
	obs    Observer
	groups *groups

	// mu guards clients. It is held across a dial (a connect to a local
	// socket), so no shim is dialled twice at once.
	mu      sync.Mutex
	clients map[string]*shimapi.Client
}

// New returns the shims of the pods, run from binary (the sealed
// crib-shim) in directories under dir, perShim pods to a process (at least
// 1), reporting to obs (nil: nobody).
func New(binary, dir string, perShim int, obs Observer) *Shims {
	if obs == nil {
		obs = nopObserver{}
	}
	gs := &groups{binary: binary, dir: dir, perShim: max(perShim, 1), obs: obs, of: map[string]*group{}}
	return &Shims{dir: dir, obs: obs, groups: gs, clients: map[string]*shimapi.Client{}}
}

// SetMountinfo has every shim process started from now on find the host's
// cgroups and resctrl in path instead of /proc/self/mountinfo: for tests,
// whose fake resctrl tree is a plain directory that only a mountinfo line
// of their own names. Call it before the first pod.
func (s *Shims) SetMountinfo(path string) { s.groups.args = []string{"--mountinfo", path} }

// Pause is the pause process of a pod that shares one pid namespace: it
// is pid 1 of that namespace, which the pod's containers join.
type Pause struct {
	// Cgroup is the pod's cgroup, where the pause runs.
	Cgroup string
	// Namespaces are the pod's pinned namespaces by kind (net, ipc, uts,
	// user); the pause joins them before it makes its pid namespace. A
	// kind with an empty path, one the pod takes from the host, has no
	// pin: the pause stays in the shim's (the host's) as every container
	// does. The user namespace of a hostUsers: false pod is joined first
	// (nsexec's setns order), so the new pid namespace is owned by it: the
	// pod's containers, root only there, must be able to join that pid
	// namespace and mount its /proc.
	Namespaces map[string]string
}

// Start has a shim process serve pod id (one with room, or a new one)
// and, given a pause, starts the pod's pause process, whose pid it returns
// (0 without one). Starting a pod already served is harmless. On failure
// the pod's shim is shut down again.
func (s *Shims) Start(ctx context.Context, id string, pause *Pause) (_ int, retErr error) {
	dir, err := s.dirOf(id)
	if err != nil {
		return 0, err
	}
	if !served(ctx, dir) {
		if err := s.groups.serve(ctx, id, dir); err != nil {
			return 0, err
		}
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, s.Shutdown(context.WithoutCancel(ctx), id))
		}
	}()
	c, err := s.Client(ctx, id)
	if err != nil || pause == nil {
		return 0, err
	}
	join := map[string]string{}
	for kind, path := range pause.Namespaces {
		if path != "" {
			join[kind] = path
		}
	}
	resp, err := c.StartPause(ctx, &shimapi.StartPauseRequest{Cgroup: pause.Cgroup, Namespaces: join})
	if err != nil {
		return 0, fmt.Errorf("start pause process: %w", err)
	}
	return int(resp.Pid), nil
}

// served reports whether a shim answers on the pod's socket.
func served(ctx context.Context, dir string) bool {
	sock := filepath.Join(dir, shimapi.SocketName)
	if _, err := os.Stat(sock); err != nil {
		return false
	}
	c, err := shimapi.Dial(ctx, sock)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Gone reports whether nothing serves pod id's shim socket (or it has
// none): crib never restarts a shim. A shim that cannot be told (a dial
// that timed out) is not gone.
func (s *Shims) Gone(ctx context.Context, id string) bool {
	_, err := s.Client(ctx, id)
	return errors.Is(err, errdefs.ErrNotFound)
}

// Client returns the connection to pod id's shim, dialling it once and
// keeping it. A connection that ended (its shim died) is dropped and
// dialled again; a socket nobody listens on, and a pod with no shim, are
// NotFound (shimapi.ErrShimGone when its socket is left), which the
// runtime reads as a dead shim and cleans up after.
func (s *Shims) Client(ctx context.Context, id string) (*shimapi.Client, error) {
	dir, err := s.dirOf(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	redial := false
	if c, ok := s.clients[id]; ok {
		if !c.Closed() {
			return c, nil
		}
		delete(s.clients, id)
		s.obs.ShimConnectionLost()
		redial = true
	}
	sock := filepath.Join(dir, shimapi.SocketName)
	if _, err := os.Stat(sock); errors.Is(err, fs.ErrNotExist) {
		s.obs.ShimGone()
		return nil, fmt.Errorf("shim of pod %s: %w", id, errdefs.ErrNotFound)
	}
	c, err := shimapi.Dial(ctx, sock)
	if errors.Is(err, shimapi.ErrShimGone) {
		s.obs.ShimGone()
	}
	if err != nil {
		return nil, fmt.Errorf("shim of pod %s: %w", id, err)
	}
	if redial {
		s.obs.ShimRedialled()
	}
	s.clients[id] = c
	return c, nil
}

// AttachSocket is where pod id's shim takes attach sessions. A pod whose
// shim directory is gone (never started, shut down, a reboot) is NotFound.
func (s *Shims) AttachSocket(id string) (string, error) {
	dir, err := s.dirOf(id)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("shim of pod %s: %w", id, errdefs.ErrNotFound)
	}
	return filepath.Join(dir, shimapi.AttachSocketName), nil
}

// Shutdown stops pod id's shim (its pause process and its sockets) and
// removes its directory: its records go with it. The shim process ends
// with the last pod it serves. A pod without a running shim is fine.
func (s *Shims) Shutdown(ctx context.Context, id string) error {
	dir, err := s.dirOf(id)
	if err != nil {
		return nil // no pod's id: no shim to stop
	}
	if err := s.shutdown(ctx, id, dir); err != nil {
		return err
	}
	return s.groups.leave(ctx, id)
}

func (s *Shims) shutdown(ctx context.Context, id, dir string) error {
	c, err := s.Client(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrUnavailable) {
		return removeDir(id, dir)
	}
	if err != nil {
		return err
	}
	_, err = c.Shutdown(ctx, &shimapi.Empty{})
	s.mu.Lock()
	delete(s.clients, id)
	s.mu.Unlock()
	_ = c.Close()
	if err != nil && !errors.Is(err, errdefs.ErrUnavailable) {
		return fmt.Errorf("shut down the shim of pod %s: %w", id, err)
	}
	return removeDir(id, dir)
}

// dirOf is pod id's shim directory. An id that is no pod's (pod ids are
// 64 lower-case hex characters) has no shim: NotFound, as the pod
// records answer it, and never a path outside dir.
func (s *Shims) dirOf(id string) (string, error) {
	if len(id) < 16 || !isLowerHex(id[:16]) {
		return "", fmt.Errorf("shim of pod %q: %w", id, errdefs.ErrNotFound)
	}
	return filepath.Join(s.dir, id[:16]), nil
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// removeDir deletes a stopped shim's directory: its records went with it.
func removeDir(id, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the shim directory of pod %s: %w", id, err)
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) ShimStarted()        {}
func (nopObserver) ShimConnectionLost() {}
func (nopObserver) ShimRedialled()      {}
func (nopObserver) ShimGone()           {}
