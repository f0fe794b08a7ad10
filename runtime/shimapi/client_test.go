package shimapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeShim answers State with the error named by the id.
type fakeShim struct{ ShimService }

func (fakeShim) State(_ context.Context, r *ContainerRequest) (*ContainerState, error) {
	switch r.Id {
	case "missing":
		return nil, fmt.Errorf("container %s: %w", r.Id, errdefs.ErrNotFound)
	case "running":
		return nil, fmt.Errorf("delete container %s: running: %w", r.Id, errdefs.ErrFailedPrecondition)
	case "plain":
		return nil, errors.New("something broke")
	}
	return &ContainerState{Id: r.Id, Status: Status_RUNNING}, nil
}

func TestErrorKindsCrossTheWire(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "shim.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(
		func(ctx context.Context, u ttrpc.Unmarshaler, _ *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
			resp, err := m(ctx, u)
			return resp, ToStatus(err)
		}))
	if err != nil {
		t.Fatal(err)
	}
	RegisterShimService(srv, fakeShim{})
	go func() { _ = srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { _ = srv.Close() })

	c, err := Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if st, err := c.State(ctx, &ContainerRequest{Id: "ok"}); err != nil || st.Status != Status_RUNNING {
		t.Fatalf("State = %v, %v", st, err)
	}
	for _, tc := range []struct {
		id   string
		kind error
		code codes.Code
		msg  string
	}{
		{"missing", errdefs.ErrNotFound, codes.NotFound, "container missing: not found"},
		{"running", errdefs.ErrFailedPrecondition, codes.FailedPrecondition, "delete container running: running: failed precondition"},
		{"plain", nil, codes.Unknown, "something broke"},
	} {
		_, err := c.State(ctx, &ContainerRequest{Id: tc.id})
		if tc.kind != nil && !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v is not %v", tc.id, err, tc.kind)
		}
		if status.Code(err) != tc.code || err.Error() != tc.msg {
			t.Errorf("%s: code %v message %q, want %v %q", tc.id, status.Code(err), err, tc.code, tc.msg)
		}
	}
	// Nothing listens: the shim is gone (NotFound, which runtime reads as
	// a dead shim), whether its socket was removed or left behind.
	if _, err := Dial(ctx, filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, ErrShimGone) || !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Dial of a missing socket: %v, want ErrShimGone", err)
	}
	stale := filepath.Join(t.TempDir(), "stale.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stale}); err != nil { // bound, never listening: as a killed shim's
		t.Fatal(err)
	}
	if _, err := Dial(ctx, stale); !errors.Is(err, ErrShimGone) {
		t.Errorf("Dial of a socket nobody listens on: %v, want ErrShimGone", err)
	}
	// A client whose server went away says so, so it can be dropped.
	if c.Closed() {
		t.Fatal("a live connection reports closed")
	}
	_ = srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !c.Closed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !c.Closed() {
		t.Error("a connection whose server closed does not report closed")
	}
}

func TestStatusRoundTrip(t *testing.T) {
	for _, kind := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrNotImplemented, errdefs.ErrPermissionDenied,
		errdefs.ErrUnauthenticated, errdefs.ErrResourceExhausted, errdefs.ErrDataLoss, errdefs.ErrAborted,
		errdefs.ErrOutOfRange, errdefs.ErrInternal, context.DeadlineExceeded, context.Canceled} {
		err := FromStatus(ToStatus(fmt.Errorf("x: %w", kind)))
		if !errors.Is(err, kind) {
			t.Errorf("%v did not survive the round trip: %v", kind, err)
		}
	}
	if FromStatus(nil) != nil || ToStatus(nil) != nil {
		t.Error("nil is not nil")
	}
}
