package cri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/sandbox"
)

// StartContainer sets a created container up and runs its process. A bad
// mount or a command that cannot be executed fails here, with init's error.
func (s *Server) StartContainer(ctx context.Context, req *criapi.StartContainerRequest) (*criapi.StartContainerResponse, error) {
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	podID, err := s.containers.Sandbox(id)
	if err != nil {
		return nil, err
	}
	unlock, err := s.usePod(ctx, podID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	pod, err := s.sandboxes.Get(podID)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("start container %s: its pod %s is gone: %w", id, podID, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return nil, err
	}
	if pod.State != sandbox.StateReady {
		return nil, fmt.Errorf("start container %s: its pod %s is not ready: %w", id, podID, errdefs.ErrFailedPrecondition)
	}
	// NRI StartContainer once the process exists (plugins learn its pid),
	// before it runs anything; a refusal ends the start.
	info := s.nriInfo(ctx, podID, id, nil)
	nriStart := func(ctx context.Context, _ int) error { return s.nri.StartContainer(ctx, id, info) }
	if _, err := s.containers.Start(ctx, id, nriStart); err != nil {
		logNRI(ctx, s.nri.StopContainer(context.WithoutCancel(ctx), id, info), id)
		return nil, err
	}
	w := s.watchers.add(id, false)
	// Closed whatever emit does (a panic is recovered above this RPC):
	// the watcher's STOPPED (and NRI StopContainer) waits for it.
	defer close(w.started)
	go s.watch(id, podID, w)
	logNRI(ctx, s.nri.PostStartContainer(ctx, info), id)
	klog.FromContext(ctx).V(2).Info("Started container", "containerID", id)
	s.emit(ctx, id, podID, criapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &criapi.StartContainerResponse{}, nil
}
