package cri

import (
	"context"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cri/spec"
)

// UpdatePodSandboxResources records a pod's new overhead and resources and
// tells NRI plugins, which may refuse them. crib writes no cgroup here: the
// kubelet sizes the pod's cgroup itself, and containers get theirs through
// UpdateContainerResources.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *criapi.UpdatePodSandboxResourcesRequest) (*criapi.UpdatePodSandboxResourcesResponse, error) {
	// Under the pod's lock, as container calls are: not before its
	// RunPodSandbox is done (plugins would hear of an update first), not
	// beside its stop or removal.
	unlock, err := s.usePod(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("update pod sandbox %s: %w", req.GetPodSandboxId(), err)
	}
	defer unlock()
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	overhead, err := optionalResources(req.GetOverhead())
	if err != nil {
		return nil, fmt.Errorf("update pod sandbox %s: overhead: %w", pod.ID, err)
	}
	resources, err := optionalResources(req.GetResources())
	if err != nil {
		return nil, fmt.Errorf("update pod sandbox %s: resources: %w", pod.ID, err)
	}
	if err := s.nri.UpdatePodSandbox(ctx, nriPod(pod), overhead, resources); err != nil {
		return nil, fmt.Errorf("update pod sandbox %s: %w", pod.ID, err)
	}
	if err := s.sandboxes.UpdateResources(ctx, pod.ID, overhead, resources); err != nil {
		return nil, err
	}
	if s.nri.Active() {
		if pod, err := s.sandboxes.Get(pod.ID); err == nil {
			logNRI(ctx, s.nri.PostUpdatePodSandbox(ctx, nriPod(pod)), pod.ID)
		}
	}
	klog.FromContext(ctx).V(2).Info("Updated pod sandbox resources", "podSandboxID", pod.ID)
	return &criapi.UpdatePodSandboxResourcesResponse{}, nil
}

// optionalResources converts CRI resources that may be absent (nil).
func optionalResources(r *criapi.LinuxContainerResources) (*specs.LinuxResources, error) {
	if r == nil {
		return nil, nil
	}
	return spec.Resources(r)
}
