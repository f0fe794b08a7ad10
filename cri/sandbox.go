package cri

import (
	"context"
	"fmt"
	"strconv"

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
}

// PodShims stops a pod's shim (and its pause process) when the pod goes.
type PodShims interface {
	Shutdown(ctx context.Context, podID string) error
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
		NetNS: pod.NetNS, IPCNS: pod.IPCNS, UTSNS: pod.UTSNS, CgroupParent: pod.CgroupParent,
		HostnamePath: pod.HostnamePath, HostsPath: pod.HostsPath, ResolvPath: pod.ResolvPath, ShmPath: pod.ShmPath,
		Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, Attempt: pod.Attempt,
		Labels: pod.Labels, Annotations: pod.Annotations, Hostname: pod.Hostname, LogDir: pod.LogDir, Sysctls: pod.Sysctls,
		HostNetwork: pod.HostNetwork(), HostIPC: pod.IPCNS == "", HostPID: pod.HostPID, SharePID: pod.SharePID,
		Privileged: pod.Privileged, SecurityUnrecorded: pod.SecurityUnrecorded,
	}
	if pod.SharePID {
		if pod.PausePID == 0 {
			return PodInfo{}, fmt.Errorf("pod %s shares a pid namespace but has no pause process", pod.ID)
		}
		info.PidNS = "/proc/" + strconv.Itoa(pod.PausePID) + "/ns/pid"
	}
	return info, nil
}

// sandboxConfig rebuilds, from the pod's record, the parts of its
// PodSandboxConfig that cri/spec reads. The request's copy is the client's
// word and may differ from what RunPodSandbox decided (a privileged flag
// added, a host namespace asked for): the CRI says it is the pod's config,
// so crib takes the pod's own. Only for a pod whose record predates them
// do the privileged flag and the pid mode come from req, as before.
func sandboxConfig(pod PodInfo, req *criapi.PodSandboxConfig) *criapi.PodSandboxConfig {
	nsMode := func(host bool) criapi.NamespaceMode {
		if host {
			return criapi.NamespaceMode_NODE
		}
		return criapi.NamespaceMode_POD
	}
	opts := &criapi.NamespaceOption{Network: nsMode(pod.HostNetwork), Ipc: nsMode(pod.HostIPC), Pid: criapi.NamespaceMode_CONTAINER}
	privileged := pod.Privileged
	switch {
	case pod.SharePID:
		opts.Pid = criapi.NamespaceMode_POD
	case pod.HostPID:
		opts.Pid = criapi.NamespaceMode_NODE
	case pod.SecurityUnrecorded && req.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == criapi.NamespaceMode_NODE:
		opts.Pid = criapi.NamespaceMode_NODE
	}
	if pod.SecurityUnrecorded {
		privileged = req.GetLinux().GetSecurityContext().GetPrivileged()
	}
	return &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: pod.UID, Attempt: pod.Attempt},
		Hostname:     pod.Hostname,
		LogDirectory: pod.LogDir,
		Labels:       pod.Labels,
		Annotations:  pod.Annotations,
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: pod.CgroupParent,
			Sysctls:      pod.Sysctls,
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				Privileged:       privileged,
				NamespaceOptions: opts,
			},
		},
	}
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
