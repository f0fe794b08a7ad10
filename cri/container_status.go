package cri

import (
	"context"
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
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
		Image: &criapi.ImageSpec{Image: st.Image}, ImageRef: imageRef(st), ImageId: st.ImageRef,
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
		resp.Info = map[string]string{"info": marshalInfo(toContainerInfo(st))}
	}
	return resp, nil
}

// containerInfo is a verbose ContainerStatus's "info", which crictl
// inspect shows as .info: first the keys containerd and CRI-O both give
// and scripts read (sandboxID, pid, runtimeSpec), then crib's own, states
// as words.
type containerInfo struct {
	SandboxID string `json:"sandboxID"`
	// Pid is the container's process in the host's pid namespace; 0 before
	// it is started.
	Pid         int             `json:"pid"`
	RuntimeSpec json.RawMessage `json:"runtimeSpec"`
	// State is the shim's word for it: CREATED, RUNNING, EXITED, UNKNOWN.
	State       string `json:"state"`
	ImageID     string `json:"imageID"`
	CgroupsPath string `json:"cgroupsPath"`
	RDTClass    string `json:"rdtClass,omitempty"`
	// BlockIOClass is the block I/O class an NRI plugin chose.
	BlockIOClass string   `json:"blockioClass,omitempty"`
	Layers       []string `json:"layers"`
	DevShm       string   `json:"devShm,omitempty"`
	// CDIDevices are the CDI devices whose edits the spec carries.
	CDIDevices []string `json:"cdiDevices,omitempty"`
}

func toContainerInfo(st runtime.State) containerInfo {
	return containerInfo{
		SandboxID: st.SandboxID, Pid: st.Pid, RuntimeSpec: st.Spec, State: st.Status.String(),
		ImageID: st.ImageRef, CgroupsPath: st.Cgroup, RDTClass: st.RDTClass, BlockIOClass: st.BlockIOClass, Layers: st.Layers, DevShm: st.DevShm,
		CDIDevices: st.CDIDevices,
	}
}

func toInt64s(in []uint32) []int64 {
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
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
