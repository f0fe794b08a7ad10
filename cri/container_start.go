package cri

import (
	"context"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StartContainer lets a created container exec its process. A command that
// cannot be executed fails here, with init's error.
func (s *Server) StartContainer(ctx context.Context, req *criapi.StartContainerRequest) (*criapi.StartContainerResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containers.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.containers.Start(ctx, id); err != nil {
		return nil, err
	}
	go s.watch(id, st.SandboxID)
	klog.FromContext(ctx).V(2).Info("Started container", "containerID", id)
	s.emit(ctx, id, st.SandboxID, criapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &criapi.StartContainerResponse{}, nil
}
