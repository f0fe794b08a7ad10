package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cri/spec"
)

// UpdateContainerResources applies new limits to a container's cgroup, in
// the order the kernel accepts (raising memory before memory+swap, …).
func (s *Server) UpdateContainerResources(ctx context.Context, req *criapi.UpdateContainerResourcesRequest) (*criapi.UpdateContainerResourcesResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetLinux() == nil {
		return nil, fmt.Errorf("update container %s: linux resources are required: %w", id, errdefs.ErrInvalidArgument)
	}
	r, err := spec.Resources(req.GetLinux())
	if err != nil {
		return nil, fmt.Errorf("update container %s: %w", id, err)
	}
	podID, err := s.containers.Sandbox(id)
	if err != nil {
		return nil, err
	}
	info := s.nriInfo(ctx, podID, id, nil)
	if r, err = s.nri.UpdateContainer(ctx, id, r, info); err != nil {
		return nil, fmt.Errorf("update container %s: %w", id, err)
	}
	if err := s.containers.UpdateResources(ctx, id, r); err != nil {
		return nil, err
	}
	logNRI(ctx, s.nri.PostUpdateContainer(ctx, info), id)
	klog.FromContext(ctx).V(2).Info("Updated container resources", "containerID", id)
	return &criapi.UpdateContainerResourcesResponse{}, nil
}
