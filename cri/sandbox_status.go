package cri

import (
	"context"
	"strings"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/sandbox"
)

// PodSandboxStatus returns a pod's state, network, namespaces, labels and
// annotations; verbose adds the record.
func (s *Server) PodSandboxStatus(_ context.Context, req *criapi.PodSandboxStatusRequest) (*criapi.PodSandboxStatusResponse, error) {
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := &criapi.PodSandboxStatus{
		Id:             pod.ID,
		Metadata:       &criapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: pod.UID, Attempt: pod.Attempt},
		State:          toCRIPodState(pod.State),
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
		resp.Info = map[string]string{"info": marshalInfo(pod)}
	}
	return resp, nil
}

func modeOf(host bool) criapi.NamespaceMode {
	if host {
		return criapi.NamespaceMode_NODE
	}
	return criapi.NamespaceMode_POD
}

func pidMode(p *sandbox.Pod) criapi.NamespaceMode {
	if p.SharePID {
		return criapi.NamespaceMode_POD
	}
	return criapi.NamespaceMode_CONTAINER
}

// ListPodSandbox lists pods matching the filter: id prefix, state, labels.
func (s *Server) ListPodSandbox(_ context.Context, req *criapi.ListPodSandboxRequest) (*criapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	var sf sandbox.Filter
	if f != nil {
		sf.IDPrefix, sf.Labels = f.GetId(), f.GetLabelSelector()
		if st := f.GetState(); st != nil {
			if st.GetState() == criapi.PodSandboxState_SANDBOX_READY {
				sf.States = []sandbox.State{sandbox.StateReady}
			} else {
				sf.States = []sandbox.State{sandbox.StateNotReady, sandbox.StateCreating}
			}
		}
	}
	var out []*criapi.PodSandbox
	for _, p := range s.sandboxes.List(sf) {
		if f.GetId() == "" || strings.HasPrefix(p.ID, f.GetId()) {
			out = append(out, toCRIPod(p))
		}
	}
	return &criapi.ListPodSandboxResponse{Items: out}, nil
}
