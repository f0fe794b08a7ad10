// Package errcode is the one table between errdefs error kinds and gRPC
// status codes, for both wires crib speaks: the CRI (gRPC) and the shim API
// (ttrpc, which carries gRPC statuses).
//
// It imports errdefs and grpc's codes only. Internal to crib; no API
// compatibility promised.
package errcode

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
)

// kinds pairs errdefs kinds with codes. The first match wins both ways, so
// ErrConflict (also FailedPrecondition) comes back as ErrFailedPrecondition.
var kinds = []struct {
	kind error
	code codes.Code
}{
	{errdefs.ErrNotFound, codes.NotFound},
	{errdefs.ErrAlreadyExists, codes.AlreadyExists},
	{errdefs.ErrInvalidArgument, codes.InvalidArgument},
	{errdefs.ErrFailedPrecondition, codes.FailedPrecondition},
	{errdefs.ErrConflict, codes.FailedPrecondition},
	{errdefs.ErrUnavailable, codes.Unavailable},
	{errdefs.ErrNotImplemented, codes.Unimplemented},
	{errdefs.ErrPermissionDenied, codes.PermissionDenied},
	{errdefs.ErrUnauthenticated, codes.Unauthenticated},
	{errdefs.ErrResourceExhausted, codes.ResourceExhausted},
	{errdefs.ErrDataLoss, codes.DataLoss},
	{errdefs.ErrAborted, codes.Aborted},
	{errdefs.ErrOutOfRange, codes.OutOfRange},
	{errdefs.ErrInternal, codes.Internal},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// Code is the status code of err's kind, Unknown when it has none.
func Code(err error) codes.Code {
	for _, k := range kinds {
		if errors.Is(err, k.kind) {
			return k.code
		}
	}
	return codes.Unknown
}

// Kind is the errdefs kind of a status code, nil for codes without one.
func Kind(c codes.Code) error {
	for _, k := range kinds {
		if k.code == c {
			return k.kind
		}
	}
	return nil
}
