package cri

import (
	"context"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The condition reason the kubelet shows when the network is not ready; the
// same words containerd and CRI-O use, so dashboards keep working.
const reasonNetworkNotReady = "NetworkPluginNotReady"

// Status reports RuntimeReady and NetworkReady. NetworkReady is true only
// when a CNI configuration can be loaded; verbose adds the effective config.
func (s *Server) Status(_ context.Context, req *criapi.StatusRequest) (*criapi.StatusResponse, error) {
	runtimeCond := &criapi.RuntimeCondition{Type: criapi.RuntimeReady, Status: true}
	netCond := &criapi.RuntimeCondition{Type: criapi.NetworkReady, Status: true}
	if err := s.network.Ready(); err != nil {
		netCond.Status = false
		netCond.Reason = reasonNetworkNotReady
		netCond.Message = "Network plugin returns error: " + err.Error()
	}
	resp := &criapi.StatusResponse{
		Status: &criapi.RuntimeStatus{Conditions: []*criapi.RuntimeCondition{runtimeCond, netCond}},
		// The kubelet reads per-handler features to decide whether it may
		// ask for recursive read-only mounts and user namespaces.
		RuntimeHandlers: runtimeHandlers(s.rro, s.opts.UserNamespaces, s.opts.RuntimeHandlers),
		Features:        runtimeFeatures(),
	}
	if req.GetVerbose() {
		resp.Info = map[string]string{"config": marshalInfo(s.opts.EffectiveConfig)}
		if s.opts.RDTInfo != nil {
			resp.Info["rdt"] = marshalInfo(s.opts.RDTInfo())
		}
	}
	return resp, nil
}
