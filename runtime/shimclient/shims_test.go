package shimclient_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"

	"github.com/crib-runtime/crib/runtime/shimapi"
	"github.com/crib-runtime/crib/runtime/shimclient"
)

const podID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// counts is an Observer that counts.
type counts struct{ started, lost, redialled, gone atomic.Int32 }

func (c *counts) ShimStarted()        { c.started.Add(1) }
func (c *counts) ShimConnectionLost() { c.lost.Add(1) }
func (c *counts) ShimRedialled()      { c.redialled.Add(1) }
func (c *counts) ShimGone()           { c.gone.Add(1) }

func (c *counts) want(t *testing.T, started, lost, redialled, gone int32) {
	t.Helper()
	if c.started.Load() != started || c.lost.Load() != lost || c.redialled.Load() != redialled || c.gone.Load() != gone {
		t.Errorf("started %d lost %d redialled %d gone %d, want %d %d %d %d",
			c.started.Load(), c.lost.Load(), c.redialled.Load(), c.gone.Load(), started, lost, redialled, gone)
	}
}

// fakeShim answers Shutdown; every other call is a nil dereference.
type fakeShim struct {
	shimapi.ShimService
	shutdowns atomic.Int32
}

func (f *fakeShim) Shutdown(context.Context, *shimapi.Empty) (*shimapi.Empty, error) {
	f.shutdowns.Add(1)
	return &shimapi.Empty{}, nil
}

// newShims returns shims under a fresh directory (no binary: nothing is
// spawned) and what they report.
func newShims(t *testing.T) (*shimclient.Shims, string, *counts) {
	obs := &counts{}
	dir := t.TempDir()
	return shimclient.New("/nonexistent", dir, 1, obs), dir, obs
}

// serve serves svc on pod podID's shim socket under dir until the test
// ends or the returned server is closed.
func serve(t *testing.T, dir string, svc shimapi.ShimService) *ttrpc.Server {
	t.Helper()
	return serveAt(t, filepath.Join(dir, podID[:16], shimapi.SocketName), func(srv *ttrpc.Server) {
		shimapi.RegisterShimService(srv, svc)
	})
}

// serveAt serves what register registers on sock until the test ends or
// the returned server is closed.
func serveAt(t *testing.T, sock string, register func(*ttrpc.Server)) *ttrpc.Server {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(sock) // a shim that came back finds its predecessor's socket
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	register(srv)
	go func() { _ = srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestClientOfNoShimIsNotFound(t *testing.T) {
	s, _, obs := newShims(t)
	ctx := context.Background()
	if _, err := s.Client(ctx, podID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Client of a pod without a shim socket: %v, want NotFound", err)
	}
	obs.want(t, 0, 0, 0, 1)
	// No pod has these ids: NotFound without a look (and never a path
	// outside the shims' directory).
	for _, id := range []string{"", "0123", "../../../etc/passwd-and-more", "0123456789ABCDEF0123"} {
		if _, err := s.Client(ctx, id); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Client(%q): %v, want NotFound", id, err)
		}
		if _, err := s.AttachSocket(id); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("AttachSocket(%q): %v, want NotFound", id, err)
		}
		if err := s.Shutdown(ctx, id); err != nil {
			t.Errorf("Shutdown(%q): %v, want nothing to do", id, err)
		}
	}
	obs.want(t, 0, 0, 0, 1)
}

// A socket left behind by a killed shim: nobody listens, the shim is gone.
func TestClientOfDeadShimIsGone(t *testing.T) {
	s, dir, obs := newShims(t)
	if err := os.MkdirAll(filepath.Join(dir, podID[:16]), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, podID[:16], shimapi.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, err = s.Client(context.Background(), podID)
	if !errors.Is(err, shimapi.ErrShimGone) || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Client of a stale socket: %v, want ErrShimGone", err)
	}
	obs.want(t, 0, 0, 0, 1)
}

func TestClientEvictedAndRedialled(t *testing.T) {
	s, dir, obs := newShims(t)
	ctx := context.Background()
	first := serve(t, dir, &fakeShim{})
	c1, err := s.Client(ctx, podID)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.Client(ctx, podID); err != nil || again != c1 {
		t.Fatalf("second Client: %p, %v, want the kept %p", again, err, c1)
	}
	// The shim dies: its connection ends.
	_ = first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !c1.Closed() {
		if time.Now().After(deadline) {
			t.Fatal("client not closed after its server was")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// It comes back (started by hand, say): the next look-up drops the
	// ended connection and dials the new shim.
	serve(t, dir, &fakeShim{})
	c2, err := s.Client(ctx, podID)
	if err != nil {
		t.Fatal(err)
	}
	if c2 == c1 || c2.Closed() {
		t.Errorf("Client after the shim came back: %p (closed %v), want a new connection, not %p", c2, c2.Closed(), c1)
	}
	obs.want(t, 0, 1, 1, 0)
}

func TestShutdown(t *testing.T) {
	s, dir, obs := newShims(t)
	ctx := context.Background()
	shim := &fakeShim{}
	serve(t, dir, shim)
	sock, err := s.AttachSocket(podID)
	if want := filepath.Join(dir, podID[:16], shimapi.AttachSocketName); err != nil || sock != want {
		t.Errorf("AttachSocket = %q, %v, want %q", sock, err, want)
	}
	if err := s.Shutdown(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if n := shim.shutdowns.Load(); n != 1 {
		t.Errorf("the shim was asked to shut down %d times, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, podID[:16])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shim directory after Shutdown: %v, want it removed", err)
	}
	// Its client went with it, and so did the pod's attach socket.
	if _, err := s.Client(ctx, podID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Client after Shutdown: %v, want NotFound", err)
	}
	if _, err := s.AttachSocket(podID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("AttachSocket after Shutdown: %v, want NotFound", err)
	}
	// Idempotent: the kubelet retries RemovePodSandbox.
	if err := s.Shutdown(ctx, podID); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	obs.want(t, 0, 0, 0, 2)
}

// A shim binary that exits without serving: Start fails Unavailable (not
// NotFound: a failed start is not a pod whose shim is gone) and shows the
// end of the shim's log.
func TestStartOfFailingShim(t *testing.T) {
	var obs counts
	bin := filepath.Join(t.TempDir(), "crib-shim")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'cannot serve this pod' >&2\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := shimclient.New(bin, dir, 1, &obs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := s.Start(ctx, podID, nil)
	if errors.Is(err, os.ErrPermission) {
		t.Skipf("cannot run a script from the temp dir: %v", err)
	}
	if pid != 0 || !errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Start = %d, %v, want Unavailable", pid, err)
	}
	if !strings.Contains(err.Error(), "(shim log: cannot serve this pod)") {
		t.Errorf("Start's error %q does not show the shim's log", err)
	}
	obs.want(t, 0, 0, 0, 0)
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a failed Start left %v", left)
	}
}
