package cri

import (
	"context"
	"fmt"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/sandbox"
)

// Sandboxes is what the pod RPCs need from sandbox.Manager.
type Sandboxes interface {
	Run(ctx context.Context, c sandbox.Config) (*sandbox.Pod, error)
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	Get(id string) (*sandbox.Pod, error)
	List(f sandbox.Filter) []*sandbox.Pod
	UpdateResources(ctx context.Context, id string, overhead, resources *specs.LinuxResources) error
}

// PodShims stops a pod's shim (and its pause process) when the pod goes,
// and tells a pod whose shim is gone.
type PodShims interface {
	Shutdown(ctx context.Context, podID string) error
	// Gone reports whether nothing serves the pod's shim socket any more
	// (the shim was killed: crib never restarts one).
	Gone(ctx context.Context, podID string) bool
}

// podInfo implements Pods over the sandbox records.
type podInfo struct{ sandboxes Sandboxes }

func (p podInfo) PodInfo(_ context.Context, id string) (PodInfo, error) {
	pod, err := p.sandboxes.Get(id)
	if err != nil {
		return PodInfo{}, err
	}
	info := PodInfo{
		ID: pod.ID, Ready: pod.State == sandbox.StateReady,
		NetNS: pod.NetNS, IPCNS: pod.IPCNS, UTSNS: pod.UTSNS, UserNS: pod.UserNS, CgroupParent: pod.CgroupParent,
		HostnamePath: pod.HostnamePath, HostsPath: pod.HostsPath, ResolvPath: pod.ResolvPath, ShmPath: pod.ShmPath,
		Config: podConfigOf(pod), SecurityUnrecorded: pod.SecurityUnrecorded,
	}
	if pod.SharePID {
		if pod.PausePID == 0 {
			return PodInfo{}, fmt.Errorf("pod %s shares a pid namespace but has no pause process", pod.ID)
		}
		info.PidNS = "/proc/" + strconv.Itoa(pod.PausePID) + "/ns/pid"
	}
	return info, nil
}

// sandboxConfig is the pod config cri/spec reads for a new container: the
// pod's record, not the request's copy. That copy is the client's word and
// may differ from what RunPodSandbox decided (a privileged flag added, a
// host namespace asked for); the CRI says it is the pod's config, so crib
// takes the pod's own. Only for a pod whose record predates them do the
// privileged flag and a host pid namespace come from req, as before.
func sandboxConfig(pod PodInfo, req *criapi.PodSandboxConfig) *criapi.PodSandboxConfig {
	if !pod.SecurityUnrecorded {
		return pod.Config
	}
	c := proto.Clone(pod.Config).(*criapi.PodSandboxConfig)
	sc := c.GetLinux().GetSecurityContext()
	reqSC := req.GetLinux().GetSecurityContext()
	sc.Privileged = reqSC.GetPrivileged()
	sc.Seccomp, sc.SeccompProfilePath = reqSC.GetSeccomp(), reqSC.GetSeccompProfilePath()
	if sc.GetNamespaceOptions().GetPid() == criapi.NamespaceMode_CONTAINER && reqSC.GetNamespaceOptions().GetPid() == criapi.NamespaceMode_NODE {
		sc.NamespaceOptions.Pid = criapi.NamespaceMode_NODE
	}
	return c
}

// podState is a pod's CRI state: its record's, except that a ready pod
// whose shim is gone is not ready. None of its containers can start
// again, and only a pod that is not ready is stopped and made anew by the
// kubelet; containerd reports a sandbox whose pause process died the
// same way.
func (s *Server) podState(ctx context.Context, p *sandbox.Pod) criapi.PodSandboxState {
	if p.State == sandbox.StateReady && s.shims.Gone(ctx, p.ID) {
		return criapi.PodSandboxState_SANDBOX_NOTREADY
	}
	return toCRIPodState(p.State)
}

func toCRIPodState(s sandbox.State) criapi.PodSandboxState {
	if s == sandbox.StateReady {
		return criapi.PodSandboxState_SANDBOX_READY
	}
	return criapi.PodSandboxState_SANDBOX_NOTREADY
}

func toCRIPod(p *sandbox.Pod) *criapi.PodSandbox {
	return &criapi.PodSandbox{
		Id:             p.ID,
		Metadata:       &criapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID, Attempt: p.Attempt},
		State:          toCRIPodState(p.State),
		CreatedAt:      p.CreatedAt.UnixNano(),
		Labels:         p.Labels,
		Annotations:    p.Annotations,
		RuntimeHandler: p.RuntimeHandler,
	}
}
