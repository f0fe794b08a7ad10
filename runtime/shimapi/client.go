package shimapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crib-runtime/crib/internal/errcode"
)

// Client is a connection to one shim.
type Client struct {
	ShimService
	conn *ttrpc.Client
	// closed is closed when the connection ends: the shim exited (a shim
	// never closes its clients while it lives) or Close was called.
	closed chan struct{}
}

// Dial connects to the shim serving a pod on socketPath. Errors of its
// calls carry the shim's errdefs kinds again (errors.Is(err,
// errdefs.ErrNotFound)).
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	c, closed, err := dial(ctx, socketPath)
	if err != nil {
		return nil, err
	}
	return &Client{ShimService: NewShimClient(c), conn: c, closed: closed}, nil
}

// GroupClient is a connection to a shim process's own socket.
type GroupClient struct {
	GroupService
	conn *ttrpc.Client
}

// DialGroup connects to the shim process serving socketPath (its
// GroupSocketName); nobody listening is ErrShimGone, as for Dial.
func DialGroup(ctx context.Context, socketPath string) (*GroupClient, error) {
	c, _, err := dial(ctx, socketPath)
	if err != nil {
		return nil, err
	}
	return &GroupClient{GroupService: NewGroupClient(c), conn: c}, nil
}

// Close closes the connection; the process keeps running.
func (c *GroupClient) Close() error { return c.conn.Close() }

func dial(ctx context.Context, socketPath string) (*ttrpc.Client, chan struct{}, error) {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		// Nothing listens on the socket: its shim is gone (killed, or the
		// node rebooted), and with it the pod's containers' supervisor.
		return nil, nil, fmt.Errorf("connect to shim %s: %w: %w", socketPath, err, ErrShimGone)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connect to shim %s: %w: %w", socketPath, err, errdefs.ErrUnavailable)
	}
	closed := make(chan struct{})
	c := ttrpc.NewClient(conn, ttrpc.WithChainUnaryClientInterceptor(deadlineInterceptor, kindsInterceptor),
		ttrpc.WithOnClose(func() { close(closed) }))
	return c, closed, nil
}

// ErrShimGone is the kind of a dial that found no shim listening: it is
// errdefs.ErrNotFound, which runtime reads as "the shim is gone".
var ErrShimGone = fmt.Errorf("shim is gone: %w", errdefs.ErrNotFound)

// Closed reports whether the connection has ended; a client whose shim
// died is closed once its receive loop saw the socket's end.
func (c *Client) Closed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Close closes the connection; the shim keeps running.
func (c *Client) Close() error { return c.conn.Close() }

// CallTimeout bounds a call to a shim whose context has no deadline of its
// own (the daemon's start, background work such as a removed container's
// delete): a wedged shim fails the call with DeadlineExceeded instead of
// holding its caller for ever. The kubelet's calls carry their deadline.
var CallTimeout = 2 * time.Minute

// unbounded are the calls that last as long as what they wait for: Wait
// (the container's life; the events watcher holds one per container) and
// ExecSync (its own timeout, 0 for none, as the CRI has it).
var unbounded = []string{"/Wait", "/ExecSync"}

func withDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, CallTimeout)
}

// deadlineInterceptor gives a call without a deadline CallTimeout.
func deadlineInterceptor(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
	for _, m := range unbounded {
		if strings.HasSuffix(info.FullMethod, m) {
			return invoke(ctx, req, resp)
		}
	}
	if _, ok := ctx.Deadline(); ok {
		return invoke(ctx, req, resp)
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	req.TimeoutNano = CallTimeout.Nanoseconds() // the shim's handler ends too
	return invoke(ctx, req, resp)
}

// kindsInterceptor turns a status the shim answered with back into an
// errdefs kind before the generated client sees it.
func kindsInterceptor(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
	if err := invoke(ctx, req, resp); err != nil {
		if errors.Is(err, ttrpc.ErrClosed) {
			return fmt.Errorf("shim connection: %w: %w", err, errdefs.ErrUnavailable)
		}
		return FromStatus(err)
	}
	if resp.Status != nil && resp.Status.Code != int32(codes.OK) {
		return FromStatus(status.ErrorProto(resp.Status))
	}
	return nil
}

// ToStatus converts the shim's error to a status for the wire, the code
// from its errdefs kind (Unknown when it has none), the message its text.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(errcode.Code(err), err.Error())
}

// FromStatus is ToStatus backwards: an error with the status's message that
// matches the code's errdefs kind with errors.Is and still answers
// status.Code.
func FromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || st.Code() == codes.OK {
		return err
	}
	return &remoteError{st: st, kind: errcode.Kind(st.Code())}
}

// remoteError is an error the shim returned.
type remoteError struct {
	st   *status.Status
	kind error
}

func (e *remoteError) Error() string              { return e.st.Message() }
func (e *remoteError) Unwrap() error              { return e.kind }
func (e *remoteError) GRPCStatus() *status.Status { return e.st }
