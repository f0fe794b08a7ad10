package cri

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("image x: %w", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("ref: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("registry h unreachable: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("creds: %w", errdefs.ErrUnauthenticated), codes.Unauthenticated},
		{fmt.Errorf("digest: %w", errdefs.ErrDataLoss), codes.DataLoss},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", context.DeadlineExceeded)), codes.DeadlineExceeded},
		{errors.New("plain"), codes.Unknown},
		{status.Error(codes.Unimplemented, "method X not implemented"), codes.Unimplemented},
	} {
		got := toStatus(tc.err)
		if status.Code(got) != tc.code {
			t.Errorf("toStatus(%v) code %v, want %v", tc.err, status.Code(got), tc.code)
		}
		if status.Convert(got).Message() != tc.err.Error() && status.Code(tc.err) == codes.Unknown {
			t.Errorf("message %q, want the error text %q", status.Convert(got).Message(), tc.err.Error())
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) != nil")
	}
}
