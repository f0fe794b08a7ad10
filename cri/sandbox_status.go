package cri

import (
	"context"
	"strconv"
	"strings"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/sandbox"
)

// PodSandboxStatus returns a pod's state, network, namespaces, labels and
// annotations; verbose adds the record.
func (s *Server) PodSandboxStatus(ctx context.Context, req *criapi.PodSandboxStatusRequest) (*criapi.PodSandboxStatusResponse, error) {
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := &criapi.PodSandboxStatus{
		Id:             pod.ID,
		Metadata:       &criapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: pod.UID, Attempt: pod.Attempt},
		State:          s.podState(ctx, pod),
		CreatedAt:      pod.CreatedAt.UnixNano(),
		Labels:         pod.Labels,
		Annotations:    pod.Annotations,
		RuntimeHandler: pod.RuntimeHandler,
		Network:        &criapi.PodSandboxNetworkStatus{},
		Linux: &criapi.LinuxPodSandboxStatus{Namespaces: &criapi.Namespace{Options: &criapi.NamespaceOption{
			Network: modeOf(pod.NetNS == ""), Ipc: modeOf(pod.IPCNS == ""), Pid: pidMode(pod),
		}}},
	}
	if len(pod.IPs) > 0 {
		st.Network.Ip = pod.IPs[0]
		for _, ip := range pod.IPs[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &criapi.PodIP{Ip: ip})
		}
	}
	resp := &criapi.PodSandboxStatusResponse{Status: st}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": marshalInfo(toSandboxInfo(pod))}
	}
	return resp, nil
}

// sandboxInfo is a verbose PodSandboxStatus's "info", which crictl
// inspectp shows as .info: the keys of containerd's that crib has facts
// for (pid, runtimeHandler, config), then crib's own, states as words. A
// crib pod has no OCI spec of its own, so there is no runtimeSpec.
type sandboxInfo struct {
	// Pid is the pause process holding the pod's pid namespace while the
	// pod is ready, 0 otherwise: a pod that shares no pid namespace has no
	// process, its other namespaces are pinned files (Namespaces).
	Pid            int    `json:"pid"`
	RuntimeHandler string `json:"runtimeHandler"`
	// Config is the pod's config as far as the record keeps it; encoded as
	// containerd encodes it (the CRI message's JSON field names).
	Config *criapi.PodSandboxConfig `json:"config"`
	// State is crib's word for it: CREATING, READY, NOTREADY.
	State string `json:"state"`
	// Network is what CNI did: host, attached or detached.
	Network    string            `json:"network"`
	Namespaces sandboxNamespaces `json:"namespaces"`
	IPs        []string          `json:"ips,omitempty"`
	// CgroupsPath is the pod's cgroup, under the config's cgroup_parent.
	CgroupsPath string `json:"cgroupsPath,omitempty"`
	// Dir holds the pod's files: hosts, resolv.conf, hostname, shm.
	Dir string `json:"dir"`
}

// sandboxNamespaces are the paths containers join ("" for the host's):
// `nsenter --net=<network>` enters the pod's network.
type sandboxNamespaces struct {
	Network string `json:"network"`
	IPC     string `json:"ipc"`
	UTS     string `json:"uts"`
	PID     string `json:"pid"`
}

func toSandboxInfo(p *sandbox.Pod) sandboxInfo {
	info := sandboxInfo{
		RuntimeHandler: p.RuntimeHandler, Config: podConfigOf(p),
		State: p.State.String(), Network: p.Network.String(),
		Namespaces: sandboxNamespaces{Network: p.NetNS, IPC: p.IPCNS, UTS: p.UTSNS},
		IPs:        p.IPs, CgroupsPath: p.Cgroup, Dir: p.Dir,
	}
	if p.SharePID && p.State == sandbox.StateReady {
		info.Pid = p.PausePID
		info.Namespaces.PID = "/proc/" + strconv.Itoa(p.PausePID) + "/ns/pid"
	}
	return info
}

// podConfigOf rebuilds the parts of a pod's CRI config that its record
// keeps (crib persists no CRI message): metadata, hostname, log
// directory, port mappings, labels, annotations, cgroup parent, sysctls,
// the privileged flag and namespace modes. It is what PodSandboxStatus
// reports and what CreateContainer hands cri/spec (see sandboxConfig).
func podConfigOf(p *sandbox.Pod) *criapi.PodSandboxConfig {
	c := &criapi.PodSandboxConfig{
		Metadata: &criapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID, Attempt: p.Attempt},
		Hostname: p.Hostname, LogDirectory: p.LogDir, Labels: p.Labels, Annotations: p.Annotations,
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: p.CgroupParent, Sysctls: p.Sysctls,
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				Privileged: p.Privileged, Seccomp: spec.SeccompProfile(p.Seccomp), SelinuxOptions: selinuxOf(p.SELinux),
				NamespaceOptions: &criapi.NamespaceOption{
					Network: modeOf(p.NetNS == ""), Ipc: modeOf(p.IPCNS == ""), Pid: pidMode(p),
					UsernsOptions: usernsOf(p),
				},
			},
		},
	}
	for _, pm := range p.PortMappings {
		c.PortMappings = append(c.PortMappings, &criapi.PortMapping{
			Protocol:      criapi.Protocol(criapi.Protocol_value[strings.ToUpper(pm.Protocol)]),
			ContainerPort: pm.ContainerPort, HostPort: pm.HostPort, HostIp: pm.HostIP,
		})
	}
	return c
}

func modeOf(host bool) criapi.NamespaceMode {
	if host {
		return criapi.NamespaceMode_NODE
	}
	return criapi.NamespaceMode_POD
}

func pidMode(p *sandbox.Pod) criapi.NamespaceMode {
	switch {
	case p.SharePID:
		return criapi.NamespaceMode_POD
	case p.HostPID:
		return criapi.NamespaceMode_NODE
	}
	return criapi.NamespaceMode_CONTAINER
}

// ListPodSandbox lists pods matching the filter: id prefix, state, labels.
// The state filter applies to the state reported (podState).
func (s *Server) ListPodSandbox(ctx context.Context, req *criapi.ListPodSandboxRequest) (*criapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	sf := sandbox.Filter{IDPrefix: f.GetId(), Labels: f.GetLabelSelector()}
	var out []*criapi.PodSandbox
	for _, p := range s.sandboxes.List(sf) {
		if f.GetId() != "" && !strings.HasPrefix(p.ID, f.GetId()) {
			continue
		}
		// A pod appears once made: RunPodSandbox has not answered yet,
		// and NRI plugins may still refuse it.
		if p.State == sandbox.StateCreating {
			continue
		}
		cp := toCRIPod(p)
		cp.State = s.podState(ctx, p)
		if st := f.GetState(); st != nil && st.GetState() != cp.State {
			continue
		}
		out = append(out, cp)
	}
	return &criapi.ListPodSandboxResponse{Items: out}, nil
}

// selinuxOf is the pod's SELinux options as the CRI gives them, nil for none.
func selinuxOf(o sandbox.SELinuxOptions) *criapi.SELinuxOption {
	if o == (sandbox.SELinuxOptions{}) {
		return nil
	}
	return &criapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}
