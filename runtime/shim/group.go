package shim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/listener"
	"github.com/crib-runtime/crib/internal/memrelease"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// group is the shim process: what its pods share (cgroups, resctrl, the
// sealed binary and the one reaper a child subreaper can have) and the
// pods it serves. Each pod keeps its own socket, records and service, so
// the daemon talks to a pod the same way whichever process serves it; a
// crash of the process ends every pod it serves (docs/architecture.md).
type group struct {
	shared
	ctx    context.Context
	dir    string // the process's own; its pods' are beside it
	logger klog.Logger

	// exit is closed by Exit; Run then stops.
	exit chan struct{}
	// closing counts pods whose servers are being stopped.
	closing sync.WaitGroup

	// mu guards pods and exiting.
	mu      sync.Mutex
	pods    map[string]*podServer
	exiting bool
}

var _ shimapi.GroupService = (*group)(nil)

// shared is what the pods of one process share.
type shared struct {
	binary  string // the sealed crib binary containers start from
	cg      cgroups.Manager
	host    *cgroups.Host
	classes classPlacer
	reaper  *reaper
	mem     *memrelease.Releaser // returns the heap after launches
	// cgroupMounts are the host's cgroup v1 hierarchies, for every init.
	cgroupMounts []initmsg.CgroupMount
}

// podID is what the daemon names pods by.
var podID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Serve starts serving a pod from its directory: the records a previous
// shim left there are loaded (containers that ran are reported exited,
// reason Unknown), then the pod's Shim and attach sockets listen.
func (g *group) Serve(_ context.Context, r *shimapi.ServeRequest) (*shimapi.Empty, error) {
	if !podID.MatchString(r.PodId) {
		return nil, fmt.Errorf("serve pod %q: not a pod id: %w", r.PodId, errdefs.ErrInvalidArgument)
	}
	// A pod's directory is its own, beside the process's: never another
	// pod's, whose records load would rewrite.
	if want := filepath.Join(filepath.Dir(g.dir), r.PodId[:16]); r.Dir != want {
		return nil, fmt.Errorf("serve pod %s: directory %q, want %q: %w", r.PodId, r.Dir, want, errdefs.ErrInvalidArgument)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.exiting {
		return nil, fmt.Errorf("serve pod %s: the shim is exiting: %w", r.PodId, errdefs.ErrFailedPrecondition)
	}
	if p, ok := g.pods[r.PodId]; ok {
		if p.svc.dir != r.Dir {
			return nil, fmt.Errorf("serve pod %s from %s: served from %s: %w", r.PodId, r.Dir, p.svc.dir, errdefs.ErrAlreadyExists)
		}
		return &shimapi.Empty{}, nil
	}
	p, err := g.startPod(r.PodId, r.Dir)
	if err != nil {
		return nil, fmt.Errorf("serve pod %s: %w", r.PodId, err)
	}
	g.pods[r.PodId] = p
	p.svc.logger.V(2).Info("Serving pod", "dir", r.Dir, "pods", len(g.pods))
	return &shimapi.Empty{}, nil
}

// startPod loads pod id's records from dir and serves its sockets there.
func (g *group) startPod(id, dir string) (_ *podServer, retErr error) {
	logger := g.logger.WithValues("podSandboxID", id)
	s := &service{shared: g.shared, podID: id, dir: dir,
		logger: logger, containers: map[string]*container{}, reserved: map[string]bool{}}
	s.release = func() { g.release(id) }
	if err := os.MkdirAll(filepath.Join(dir, "containers"), 0o700); err != nil {
		return nil, fmt.Errorf("pod's shim dir: %w", err)
	}
	// The socket's lock first: a process that serves the pod already keeps
	// it, and its containers must not be taken for a dead shim's by load.
	sock, err := listener.Listen(filepath.Join(dir, shimapi.SocketName), 0o600)
	if err != nil {
		return nil, err
	}
	l := track(sock)
	defer func() {
		if retErr != nil {
			_ = l.Close()
		}
	}()
	if err := s.load(); err != nil {
		return nil, err
	}
	attach, err := s.serveAttach(dir)
	if err != nil {
		return nil, err
	}
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(intercept(logger, g.mem)))
	if err != nil {
		_ = attach.Close()
		return nil, err
	}
	shimapi.RegisterShimService(srv, s)
	go func() {
		// Shutdown closes the listener: Serve ends with net.ErrClosed.
		if err := srv.Serve(g.ctx, l); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			logger.Error(err, "Serving pod ended")
		}
	}()
	return &podServer{svc: s, srv: srv, l: l, attach: attach}, nil
}

// release stops serving pod id (its Shutdown): at once for new calls,
// once idle for the connection whose Shutdown is being answered.
func (g *group) release(id string) {
	g.mu.Lock()
	p := g.pods[id]
	delete(g.pods, id)
	n := len(g.pods)
	g.mu.Unlock()
	if p == nil {
		return
	}
	p.svc.logger.V(2).Info("Stopped serving pod", "pods", n)
	g.closing.Add(1)
	go func() {
		defer g.closing.Done()
		p.close()
	}()
}

// releaseAll stops serving every pod, as the process ends.
func (g *group) releaseAll() {
	g.mu.Lock()
	g.exiting = true
	ids := slices.Collect(maps.Keys(g.pods))
	g.mu.Unlock()
	for _, id := range ids {
		g.release(id)
	}
}

// Pods lists the pods served, sorted.
func (g *group) Pods(context.Context, *shimapi.Empty) (*shimapi.PodsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := slices.Sorted(maps.Keys(g.pods))
	return &shimapi.PodsResponse{PodIds: ids}, nil
}

// Exit ends the process once it serves no pod: the daemon asks when it
// has handed the process's last pod's Shutdown, and never hands it a pod
// after that.
func (g *group) Exit(context.Context, *shimapi.Empty) (*shimapi.Empty, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pods) > 0 {
		return nil, fmt.Errorf("exit: pods %v are served: %w", slices.Sorted(maps.Keys(g.pods)), errdefs.ErrFailedPrecondition)
	}
	if !g.exiting {
		g.exiting = true
		close(g.exit)
	}
	return &shimapi.Empty{}, nil
}
