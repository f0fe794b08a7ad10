package shimapi

import (
	"context"
	"errors"
	"fmt"
	"net"

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
}

// Dial connects to the shim serving socketPath. Errors of its calls carry
// the shim's errdefs kinds again (errors.Is(err, errdefs.ErrNotFound)).
func Dial(ctx context.Context, socketPath string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("connect to shim %s: %w: %w", socketPath, err, errdefs.ErrUnavailable)
	}
	c := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(kindsInterceptor))
	return &Client{ShimService: NewShimClient(c), conn: c}, nil
}

// Close closes the connection; the shim keeps running.
func (c *Client) Close() error { return c.conn.Close() }

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
