package cri

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

// rpcLog records what the interceptors report to their observer.
type rpcLog struct{ calls, panics []string }

func (l *rpcLog) ObserveRPC(method, code string, took time.Duration) {
	l.calls = append(l.calls, method+":"+code)
}
func (l *rpcLog) RecoveredPanic(method string) { l.panics = append(l.panics, method) }

func TestInterceptorObserves(t *testing.T) {
	obs := &rpcLog{}
	unary := unaryInterceptor(klog.Background(), obs)
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ContainerStatus"}
	for _, h := range []grpc.UnaryHandler{
		func(context.Context, any) (any, error) { return "ok", nil },
		func(context.Context, any) (any, error) {
			return nil, fmt.Errorf("container 9f: %w", errdefs.ErrNotFound)
		},
		func(context.Context, any) (any, error) { panic("boom") },
	} {
		_, err := unary(context.Background(), nil, info, h)
		if strings.Contains(fmt.Sprint(err), "boom") && status.Code(err) != codes.Internal {
			t.Errorf("panic answered %v, want Internal", err)
		}
	}
	stream := streamInterceptor(klog.Background(), obs)
	err := stream(nil, fakeStream{}, &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/GetContainerEvents"},
		func(any, grpc.ServerStream) error { return context.Canceled })
	if status.Code(err) != codes.Canceled {
		t.Errorf("stream: %v, want Canceled", err)
	}
	want := "ContainerStatus:OK ContainerStatus:NotFound ContainerStatus:Internal GetContainerEvents:Canceled"
	if got := strings.Join(obs.calls, " "); got != want {
		t.Errorf("observed %q, want %q", got, want)
	}
	if len(obs.panics) != 1 || obs.panics[0] != "ContainerStatus" {
		t.Errorf("panics %v, want one in ContainerStatus", obs.panics)
	}
}

type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

// The calls that make or change pods count as work, the kubelet's polls and
// exec probes do not: under a kubelet's relist every second and probes every
// few seconds, work must still end.
func TestAfterWorkSkipsPolls(t *testing.T) {
	var worked []string
	var last string
	obs := AfterWork(nil, func() { worked = append(worked, last) })
	for _, m := range []string{"ListPodSandbox", "ListContainers", "ContainerStatus", "PodSandboxStatus",
		"ListContainerStats", "ListPodSandboxStats", "ImageFsInfo", "Status", "Version", "RunPodSandbox",
		"CreateContainer", "PullImage", "ExecSync", "RemovePodSandbox"} {
		last = m
		obs.ObserveRPC(m, "OK", time.Millisecond)
	}
	if got, want := strings.Join(worked, " "), "RunPodSandbox CreateContainer PullImage RemovePodSandbox"; got != want {
		t.Fatalf("worked after %q, want %q", got, want)
	}
}
