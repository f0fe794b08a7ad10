package cri

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

// Stats reads what the stats RPCs report: cgroup counters, the writable
// layer's size, a pod's interface counters.
type Stats interface {
	Cgroup(path string) (*cgroups.Stats, error)
	WritableLayer(containerID string) (bytes, inodes uint64, err error)
	StorageDir() string
	Network(netns string) ([]sandbox.InterfaceStats, error)
}

// cpuSamples remembers the last CPU reading per cgroup, so that
// UsageNanoCores (a rate) can be computed between two calls, as the kubelet
// expects the runtime to.
type cpuSamples struct {
	mu   sync.Mutex // guards last
	last map[string]cpuSample
}

type cpuSample struct {
	at    time.Time
	usage uint64
}

func (c *cpuSamples) usage(key string, st *cgroups.Stats) *criapi.CpuUsage {
	u := &criapi.CpuUsage{Timestamp: st.Timestamp.UnixNano(), UsageCoreNanoSeconds: &criapi.UInt64Value{Value: st.CPU.UsageNanos}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	if prev, ok := c.last[key]; ok && st.Timestamp.After(prev.at) && st.CPU.UsageNanos >= prev.usage {
		rate := float64(st.CPU.UsageNanos-prev.usage) / st.Timestamp.Sub(prev.at).Seconds()
		u.UsageNanoCores = &criapi.UInt64Value{Value: uint64(rate)}
	}
	c.last[key] = cpuSample{at: st.Timestamp, usage: st.CPU.UsageNanos}
	return u
}

// forget drops a key's sample; RemoveContainer and RemovePodSandbox call it,
// so that the map holds only objects that still exist.
func (c *cpuSamples) forget(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, key)
}

// podKey is a pod's key, apart from its containers' (their ids).
func podKey(podID string) string { return "pod/" + podID }

// size reports how many samples are kept (tests: memory stays bounded).
func (c *cpuSamples) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.last)
}

func memoryUsage(st *cgroups.Stats) *criapi.MemoryUsage {
	m := st.Memory
	return &criapi.MemoryUsage{
		Timestamp: st.Timestamp.UnixNano(), WorkingSetBytes: &criapi.UInt64Value{Value: m.WorkingSetBytes},
		AvailableBytes: &criapi.UInt64Value{Value: m.AvailableBytes}, UsageBytes: &criapi.UInt64Value{Value: m.UsageBytes},
		RssBytes: &criapi.UInt64Value{Value: m.RSSBytes}, PageFaults: &criapi.UInt64Value{Value: m.PageFaults},
		MajorPageFaults: &criapi.UInt64Value{Value: m.MajorPageFaults},
	}
}

// containerStats reads one container's stats; an exited one has none.
func (s *Server) containerStats(st runtime.State) (*criapi.ContainerStats, error) {
	out := &criapi.ContainerStats{Attributes: &criapi.ContainerAttributes{
		Id: st.ID, Metadata: &criapi.ContainerMetadata{Name: st.Name, Attempt: st.Attempt},
		Labels: st.Labels, Annotations: st.Annotations,
	}}
	if st.Status != runtime.StatusRunning {
		s.cpu.forget(st.ID)
		return out, nil
	}
	cg, err := s.stats.Cgroup(st.Cgroup)
	if err != nil {
		return nil, err
	}
	out.Cpu, out.Memory = s.cpu.usage(st.ID, cg), memoryUsage(cg)
	used, inodes, err := s.stats.WritableLayer(st.ID)
	if err != nil {
		return nil, err
	}
	out.WritableLayer = &criapi.FilesystemUsage{Timestamp: time.Now().UnixNano(),
		FsId:      &criapi.FilesystemIdentifier{Mountpoint: s.stats.StorageDir()},
		UsedBytes: &criapi.UInt64Value{Value: used}, InodesUsed: &criapi.UInt64Value{Value: inodes}}
	return out, nil
}

// ContainerStats returns one container's CPU, memory and writable layer.
func (s *Server) ContainerStats(ctx context.Context, req *criapi.ContainerStatsRequest) (*criapi.ContainerStatsResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containers.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	cs, err := s.containerStats(st)
	if err != nil {
		return nil, err
	}
	return &criapi.ContainerStatsResponse{Stats: cs}, nil
}

// ListContainerStats returns the stats of running containers matching the filter.
func (s *Server) ListContainerStats(ctx context.Context, req *criapi.ListContainerStatsRequest) (*criapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	all, err := s.containers.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*criapi.ContainerStats
	for _, st := range all {
		if st.Status != runtime.StatusRunning ||
			!matchContainer(st, &criapi.ContainerFilter{Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}) {
			continue
		}
		cs, err := s.containerStats(st)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, cs)
	}
	return &criapi.ListContainerStatsResponse{Stats: out}, nil
}
