package cri

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// StopContainer sends the container's stop signal and SIGKILL after the
// timeout. Stopping an unknown or exited container succeeds (CRI: StopContainer
// is idempotent).
func (s *Server) StopContainer(ctx context.Context, req *criapi.StopContainerRequest) (*criapi.StopContainerResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.containers.Stop(ctx, id, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	if podID, err := s.containers.Sandbox(id); err == nil {
		logNRI(ctx, s.nri.StopContainer(ctx, id, s.nriInfo(ctx, podID, id, nil)), id)
	}
	klog.FromContext(ctx).V(2).Info("Stopped container", "containerID", id)
	return &criapi.StopContainerResponse{}, nil
}
