package cri

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

// PodSandboxStats returns a pod's CPU and memory (its cgroup parent, which
// holds every container), interface counters, process count and the stats
// of its containers.
func (s *Server) PodSandboxStats(ctx context.Context, req *criapi.PodSandboxStatsRequest) (*criapi.PodSandboxStatsResponse, error) {
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := s.podStats(pod, all)
	if err != nil {
		return nil, err
	}
	return &criapi.PodSandboxStatsResponse{Stats: ps}, nil
}

// ListPodSandboxStats returns the stats of every ready pod matching the
// filter. A pod (or container) removed while the call runs is left out, not
// an error: its cgroup went with it. The containers are listed once (one
// call per pod's shim), not once per pod.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *criapi.ListPodSandboxStatsRequest) (*criapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	pods := s.sandboxes.List(sandbox.Filter{IDPrefix: f.GetId(), Labels: f.GetLabelSelector(), States: []sandbox.State{sandbox.StateReady}})
	if len(pods) == 0 {
		return &criapi.ListPodSandboxStatsResponse{}, nil
	}
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*criapi.PodSandboxStats
	for _, pod := range pods {
		ps, err := s.podStats(pod, all)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ps)
	}
	return &criapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

// podStats reads a pod's stats; all is every container, listed by the caller.
func (s *Server) podStats(pod *sandbox.Pod, all []runtime.State) (*criapi.PodSandboxStats, error) {
	l := &criapi.LinuxPodSandboxStats{}
	out := &criapi.PodSandboxStats{Linux: l, Attributes: &criapi.PodSandboxAttributes{Id: pod.ID,
		Metadata: &criapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: pod.UID, Attempt: pod.Attempt},
		Labels:   pod.Labels, Annotations: pod.Annotations}}
	if pod.State != sandbox.StateReady {
		return out, nil
	}
	if pod.CgroupParent != "" {
		cg, err := s.stats.Cgroup(pod.CgroupParent)
		if err != nil {
			return nil, err
		}
		l.Cpu, l.Memory = s.cpu.usage(podKey(pod.ID), cg), memoryUsage(cg)
		l.Process = &criapi.ProcessUsage{Timestamp: cg.Timestamp.UnixNano(), ProcessCount: &criapi.UInt64Value{Value: cg.Pids.Current}}
	}
	if pod.NetNS != "" {
		ifs, err := s.stats.Network(pod.NetNS)
		if err != nil {
			return nil, err
		}
		l.Network = &criapi.NetworkUsage{Timestamp: time.Now().UnixNano()}
		for _, i := range ifs {
			u := &criapi.NetworkInterfaceUsage{Name: i.Name, RxBytes: &criapi.UInt64Value{Value: i.RxBytes},
				RxErrors: &criapi.UInt64Value{Value: i.RxErrors}, TxBytes: &criapi.UInt64Value{Value: i.TxBytes},
				TxErrors: &criapi.UInt64Value{Value: i.TxErrors}}
			l.Network.Interfaces = append(l.Network.Interfaces, u)
			if strings.EqualFold(i.Name, "eth0") {
				l.Network.DefaultInterface = u
			}
		}
	}
	for _, st := range all {
		if st.SandboxID != pod.ID {
			continue
		}
		cs, err := s.containerStats(st)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // exited and removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		l.Containers = append(l.Containers, cs)
	}
	return out, nil
}
