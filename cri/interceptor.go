package cri

import (
	"context"
	"fmt"
	"path"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

var requestIDs atomic.Uint64

// unaryInterceptor gives each call a logger (rpc, requestID), turns panics
// into Internal errors, converts domain errors to status codes and logs the
// call with its duration: at V(4) when it succeeds or fails in an expected
// way, as an error when the fault is crib's (Internal, Unknown, DataLoss).
func unaryInterceptor(base klog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
		logger, ctx := callLogger(ctx, base, info.FullMethod)
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in %s: %v: %w", path.Base(info.FullMethod), r, errdefs.ErrInternal)
			}
			err = toStatus(err)
			logCall(logger, start, err)
		}()
		if v := logger.V(6); v.Enabled() {
			v.Info("Received request", "request", req)
		}
		return next(ctx, req)
	}
}

func streamInterceptor(base klog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
		logger, ctx := callLogger(ss.Context(), base, info.FullMethod)
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in %s: %v: %w", path.Base(info.FullMethod), r, errdefs.ErrInternal)
			}
			err = toStatus(err)
			logCall(logger, start, err)
		}()
		return next(srv, &loggedStream{ServerStream: ss, ctx: ctx})
	}
}

type loggedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *loggedStream) Context() context.Context { return s.ctx }

func callLogger(ctx context.Context, base klog.Logger, method string) (klog.Logger, context.Context) {
	logger := base.WithValues("rpc", path.Base(method), "requestID", requestIDs.Add(1))
	return logger, klog.NewContext(ctx, logger)
}

func logCall(logger klog.Logger, start time.Time, err error) {
	d := time.Since(start)
	switch code := status.Code(err); code {
	case codes.OK:
		logger.V(4).Info("Served RPC", "duration", d)
	case codes.Internal, codes.Unknown, codes.DataLoss:
		logger.Error(err, "RPC failed", "code", code.String(), "duration", d)
	default:
		logger.V(2).Info("RPC failed", "code", code.String(), "err", err.Error(), "duration", d)
	}
}
