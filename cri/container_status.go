package cri

import (
	"context"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus returns a container's state, times, exit code and reason,
// image, mounts, log path, resources and user. Verbose adds the record.
func (s *Server) ContainerStatus(ctx context.Context, req *criapi.ContainerStatusRequest) (*criapi.ContainerStatusResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containers.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	cs := &criapi.ContainerStatus{
		Id: st.ID, Metadata: &criapi.ContainerMetadata{Name: st.Name, Attempt: st.Attempt},
		State: toCRIState(st.Status), CreatedAt: st.CreatedAt.UnixNano(),
		StartedAt: nanos(st.StartedAt), FinishedAt: nanos(st.FinishedAt),
		ExitCode: st.ExitCode, Reason: st.Reason, Message: st.Message,
		Image: &criapi.ImageSpec{Image: st.Image}, ImageRef: st.ImageRef, ImageId: st.ImageRef,
		Labels: st.Labels, Annotations: st.Annotations, LogPath: st.LogPath,
		Mounts: toCRIMounts(st.Mounts), Resources: toCRIResources(st.Resources),
		StopSignal: criapi.Signal(st.StopSignal),
	}
	if p := st.Process; p != nil {
		cs.User = &criapi.ContainerUser{Linux: &criapi.LinuxContainerUser{
			Uid: int64(p.User.UID), Gid: int64(p.User.GID), SupplementalGroups: toInt64s(p.User.AdditionalGids)}}
	}
	resp := &criapi.ContainerStatusResponse{Status: cs}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": marshalInfo(st)}
	}
	return resp, nil
}

func toInt64s(in []uint32) []int64 {
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

func toCRIMounts(ms []specs.Mount) []*criapi.Mount {
	var out []*criapi.Mount
	for _, m := range ms {
		cm := &criapi.Mount{ContainerPath: m.Destination, HostPath: m.Source}
		for _, o := range m.Options {
			switch {
			case o == "ro":
				cm.Readonly = true
			case strings.HasSuffix(o, "shared"):
				cm.Propagation = criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			case strings.HasSuffix(o, "slave"):
				cm.Propagation = criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			}
		}
		out = append(out, cm)
	}
	return out
}

func toCRIResources(r *specs.LinuxResources) *criapi.ContainerResources {
	if r == nil {
		return nil
	}
	l := &criapi.LinuxContainerResources{}
	if c := r.CPU; c != nil {
		if c.Period != nil {
			l.CpuPeriod = int64(*c.Period)
		}
		if c.Quota != nil {
			l.CpuQuota = *c.Quota
		}
		if c.Shares != nil {
			l.CpuShares = int64(*c.Shares)
		}
		l.CpusetCpus, l.CpusetMems = c.Cpus, c.Mems
	}
	if m := r.Memory; m != nil {
		if m.Limit != nil {
			l.MemoryLimitInBytes = *m.Limit
		}
		if m.Swap != nil {
			l.MemorySwapLimitInBytes = *m.Swap
		}
	}
	l.Unified = r.Unified
	return &criapi.ContainerResources{Linux: l}
}
