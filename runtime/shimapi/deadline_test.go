package shimapi

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
)

// wedgedShim never answers State (it waits for its context); Wait answers
// after waitFor.
type wedgedShim struct {
	ShimService
	waitFor time.Duration
}

func (wedgedShim) State(ctx context.Context, _ *ContainerRequest) (*ContainerState, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (w wedgedShim) Wait(context.Context, *ContainerRequest) (*ContainerState, error) {
	time.Sleep(w.waitFor)
	return &ContainerState{Status: Status_EXITED}, nil
}

// TestCallsWithoutDeadlineAreBounded: a call whose context has no
// deadline (the daemon's start) fails after CallTimeout when the shim does
// not answer; Wait, which lasts as long as the container, is not cut.
func TestCallsWithoutDeadlineAreBounded(t *testing.T) {
	defer func(d time.Duration) { CallTimeout = d }(CallTimeout)
	CallTimeout = 100 * time.Millisecond
	sock := filepath.Join(t.TempDir(), "shim.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ttrpc.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	RegisterShimService(srv, wedgedShim{waitFor: 3 * CallTimeout})
	go func() { _ = srv.Serve(context.Background(), l) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	done := make(chan error, 1)
	go func() {
		_, err := c.State(context.Background(), &ContainerRequest{Id: "x"})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("State of a wedged shim: %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("State without a deadline waits for a wedged shim")
	}
	if st, err := c.Wait(context.Background(), &ContainerRequest{Id: "x"}); err != nil || st.Status != Status_EXITED {
		t.Fatalf("Wait longer than CallTimeout: %v, %v; want it left alone", st, err)
	}
}
