package cri

import (
	"context"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StartContainer sets a created container up and runs its process. A bad
// mount or a command that cannot be executed fails here, with init's error.
func (s *Server) StartContainer(ctx context.Context, req *criapi.StartContainerRequest) (*criapi.StartContainerResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	podID, err := s.containers.Start(ctx, id)
	if err != nil {
		return nil, err
	}
	go s.watch(id, podID)
	klog.FromContext(ctx).V(2).Info("Started container", "containerID", id)
	s.emit(ctx, id, podID, criapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &criapi.StartContainerResponse{}, nil
}
