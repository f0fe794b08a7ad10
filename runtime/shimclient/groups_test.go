package shimclient_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/crib-runtime/crib/runtime/shimapi"
	"github.com/crib-runtime/crib/runtime/shimclient"
)

// fakeGroup is a shim process: Serve serves a fakeShim on the pod's socket.
type fakeGroup struct {
	t *testing.T

	mu     sync.Mutex
	pods   map[string]*ttrpc.Server
	exited bool
}

func (g *fakeGroup) Serve(_ context.Context, r *shimapi.ServeRequest) (*shimapi.Empty, error) {
	srv := serveAt(g.t, filepath.Join(r.Dir, shimapi.SocketName), func(srv *ttrpc.Server) {
		shimapi.RegisterShimService(srv, &fakeShim{})
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pods[r.PodId] = srv
	return &shimapi.Empty{}, nil
}

func (g *fakeGroup) Pods(context.Context, *shimapi.Empty) (*shimapi.PodsResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return &shimapi.PodsResponse{PodIds: slices.Sorted(maps.Keys(g.pods))}, nil
}

func (g *fakeGroup) Exit(context.Context, *shimapi.Empty) (*shimapi.Empty, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pods) > 0 {
		return nil, shimapi.ToStatus(fmt.Errorf("pods served: %w", errdefs.ErrFailedPrecondition))
	}
	g.exited = true
	return &shimapi.Empty{}, nil
}

// forget is the pod's Shutdown as the process sees it.
func (g *fakeGroup) forget(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.pods[id].Close()
	delete(g.pods, id)
}

func (g *fakeGroup) served() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.pods))
}

func pod(n int) string { return fmt.Sprintf("%016x%048x", n, 0) }

// A daemon that restarts counts the shim processes it finds: a new pod
// goes where there is room; a process whose last pod leaves is told to
// exit and its directory goes, unless no other process has room (it is
// kept for the next pod); one that still serves pods the daemon did not
// know of is counted again rather than ended.
func TestGroupsAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	fake := func(name string, pods ...string) *fakeGroup {
		g := &fakeGroup{t: t, pods: map[string]*ttrpc.Server{}}
		serveAt(t, filepath.Join(dir, name, shimapi.GroupSocketName), func(srv *ttrpc.Server) { shimapi.RegisterGroupService(srv, g) })
		for _, id := range pods {
			if _, err := g.Serve(ctx, &shimapi.ServeRequest{PodId: id, Dir: filepath.Join(dir, id[:16])}); err != nil {
				t.Fatal(err)
			}
		}
		return g
	}
	a, b := fake("grp-a", pod(0)), fake("grp-b", pod(10))
	// A process whose socket nobody serves any more: its directory goes.
	if err := os.MkdirAll(filepath.Join(dir, "grp-dead"), 0o700); err != nil {
		t.Fatal(err)
	}

	var obs counts
	s := shimclient.New("/nonexistent", dir, 2, &obs) // spawns nothing
	for _, id := range []string{pod(1), pod(2)} {
		if _, err := s.Start(ctx, id, nil); err != nil {
			t.Fatalf("Start of a pod with room in a running shim: %v", err)
		}
	}
	if got := a.served(); !slices.Equal(got, []string{pod(0), pod(1)}) {
		t.Errorf("shim a serves %v", got)
	}
	if got := b.served(); !slices.Equal(got, []string{pod(2), pod(10)}) {
		t.Errorf("shim b serves %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "grp-dead")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dead shim's directory: %v, want it removed", err)
	}
	// No room left: a new process, which fails to spawn here.
	if _, err := s.Start(ctx, pod(4), nil); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Start with no room and no binary: %v, want Unavailable", err)
	}
	obs.want(t, 0, 0, 0, 0)

	shutdown := func(g *fakeGroup, id string) {
		t.Helper()
		g.forget(id)
		if err := s.Shutdown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(a, pod(0))
	shutdown(b, pod(2)) // b has room again
	// A pod handed to a by someone else (the daemon lost count): a is
	// counted again, not ended.
	if _, err := a.Serve(ctx, &shimapi.ServeRequest{PodId: pod(3), Dir: filepath.Join(dir, pod(3)[:16])}); err != nil {
		t.Fatal(err)
	}
	shutdown(a, pod(1))
	if a.exited {
		t.Fatal("shim a was told to exit while it serves pod 3")
	}
	shutdown(a, pod(3))
	if !a.exited {
		t.Error("shim a was not told to exit after its last pod left, with room in b")
	}
	if _, err := os.Stat(filepath.Join(dir, "grp-a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an ended shim's directory: %v, want it removed", err)
	}
	// b's last pod: b is the one process left, kept for the next pod.
	shutdown(b, pod(10))
	if b.exited {
		t.Error("the last shim process was told to exit")
	}
	if _, err := s.Start(ctx, pod(5), nil); err != nil {
		t.Fatalf("Start with a process kept: %v", err)
	}
	if got := b.served(); !slices.Equal(got, []string{pod(5)}) {
		t.Errorf("shim b serves %v, want the new pod", got)
	}
}
