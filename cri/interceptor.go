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

// RPCObserver learns of every call the interceptors serve: the daemon's
// metrics (internal/metrics) implement it.
type RPCObserver interface {
	// ObserveRPC is called once per call: method is the RPC's name
	// ("RunPodSandbox"), code the gRPC code's name ("OK", "NotFound").
	ObserveRPC(method, code string, took time.Duration)
	// RecoveredPanic is called when a handler panicked.
	RecoveredPanic(method string)
}

// unaryInterceptor gives each call a logger (rpc, requestID), turns panics
// into Internal errors, converts domain errors to status codes, logs the
// call with its duration (at V(4) when it succeeds or fails in an expected
// way, as an error when the fault is crib's: Internal, Unknown, DataLoss)
// and reports it to obs (nil: nobody).
func unaryInterceptor(base klog.Logger, obs RPCObserver) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
		logger, ctx := callLogger(ctx, base, info.FullMethod)
		start := time.Now()
		defer func() {
			err = finishCall(logger, obs, info.FullMethod, start, recover(), err)
		}()
		if v := logger.V(6); v.Enabled() {
			v.Info("Received request", "request", req)
		}
		return next(ctx, req)
	}
}

func streamInterceptor(base klog.Logger, obs RPCObserver) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
		logger, ctx := callLogger(ss.Context(), base, info.FullMethod)
		start := time.Now()
		defer func() {
			err = finishCall(logger, obs, info.FullMethod, start, recover(), err)
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

// finishCall turns a recovered panic (r, nil when none) or err into the
// call's status, logs the call and reports it to obs. recover() must be
// called in the deferred function itself, hence r.
func finishCall(logger klog.Logger, obs RPCObserver, fullMethod string, start time.Time, r any, err error) error {
	method := path.Base(fullMethod)
	if r != nil {
		err = fmt.Errorf("panic in %s: %v: %w", method, r, errdefs.ErrInternal)
		if obs != nil {
			obs.RecoveredPanic(method)
		}
	}
	err = toStatus(err)
	d := time.Since(start)
	logCall(logger, d, err)
	if obs != nil {
		obs.ObserveRPC(method, status.Code(err).String(), d)
	}
	return err
}

func logCall(logger klog.Logger, d time.Duration, err error) {
	switch code := status.Code(err); code {
	case codes.OK:
		logger.V(4).Info("Served RPC", "duration", d)
	case codes.Internal, codes.Unknown, codes.DataLoss:
		logger.Error(err, "RPC failed", "code", code.String(), "duration", d)
	default:
		logger.V(2).Info("RPC failed", "code", code.String(), "err", err.Error(), "duration", d)
	}
}

// polls are the calls the kubelet repeats to learn state (its relist,
// stats, status) or health (exec probes, ExecSync, every period of every
// probing container): they change no pod, container or image, and a forced
// collection after each would cost a node of probed pods CPU all the time.
var polls = map[string]bool{
	"Version": true, "Status": true, "RuntimeConfig": true, "ExecSync": true,
	"ListPodSandbox": true, "PodSandboxStatus": true, "ListContainers": true, "ContainerStatus": true,
	"ListImages": true, "ImageStatus": true, "ImageFsInfo": true,
	"ContainerStats": true, "ListContainerStats": true, "PodSandboxStats": true, "ListPodSandboxStats": true,
	"ListMetricDescriptors": true, "ListPodSandboxMetrics": true, "GetContainerEvents": true,
}

// AfterWork is obs that also calls worked after each call that is not a
// poll: one that made or changed pods, containers or images.
func AfterWork(obs RPCObserver, worked func()) RPCObserver {
	if obs == nil {
		obs = noObserver{}
	}
	return afterWork{RPCObserver: obs, worked: worked}
}

type afterWork struct {
	RPCObserver
	worked func()
}

func (a afterWork) ObserveRPC(method, code string, took time.Duration) {
	a.RPCObserver.ObserveRPC(method, code, took)
	if !polls[method] {
		a.worked()
	}
}

type noObserver struct{}

func (noObserver) ObserveRPC(string, string, time.Duration) {}
func (noObserver) RecoveredPanic(string)                    {}
