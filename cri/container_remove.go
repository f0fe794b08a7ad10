package cri

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/runtime"
)

// RemoveContainer kills a container if it runs and removes it. Removing an
// unknown container succeeds (CRI: RemoveContainer is idempotent).
func (s *Server) RemoveContainer(ctx context.Context, req *criapi.RemoveContainerRequest) (*criapi.RemoveContainerResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	var podID string
	var st *runtime.State
	if err == nil {
		st = s.stateForNRI(ctx, id)
		podID, err = s.containers.Remove(ctx, id)
	}
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	s.cpu.forget(id)
	s.watchers.forget(ctx, id)
	// Its image may have been removed while it pinned the layers.
	s.images.Collect()
	logNRI(ctx, s.nri.RemoveContainer(ctx, id, s.nriInfo(ctx, podID, id, st)), id)
	klog.FromContext(ctx).V(2).Info("Removed container", "containerID", id)
	s.emit(ctx, id, podID, criapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	return &criapi.RemoveContainerResponse{}, nil
}
