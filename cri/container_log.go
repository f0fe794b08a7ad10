package cri

import (
	"context"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ReopenContainerLog makes the shim reopen the container's log file, after
// the kubelet rotated it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *criapi.ReopenContainerLogRequest) (*criapi.ReopenContainerLogResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if err := s.containers.ReopenLog(ctx, id); err != nil {
		return nil, err
	}
	return &criapi.ReopenContainerLogResponse{}, nil
}
