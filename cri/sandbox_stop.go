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

// StopPodSandbox kills whatever still runs in the pod and tears its network
// down; the record stays until RemovePodSandbox. Stopping an unknown or
// stopped pod succeeds (CRI: StopPodSandbox is idempotent).
func (s *Server) StopPodSandbox(ctx context.Context, req *criapi.StopPodSandboxRequest) (*criapi.StopPodSandboxResponse, error) {
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	// Alone: a container created or started meanwhile would outlive the
	// stop (see podLocks).
	unlock, err := s.podLocks.lock(ctx, pod.ID, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The kubelet stops containers with their grace periods first; what is
	// left is killed now.
	var errs []error
	for _, id := range s.containers.InSandbox(pod.ID) {
		if err := s.containers.Stop(ctx, id, 0); err != nil {
			errs = append(errs, err)
			continue
		}
		logNRI(ctx, s.nri.StopContainer(ctx, id, s.nriInfo(ctx, pod.ID, id, nil)), id)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("stop pod sandbox %s: %w", pod.ID, err)
	}
	// Once, with the containers stopped and the pod still whole (the
	// record read again under the pod's lock: a second Stop finds it
	// NOTREADY and tells plugins nothing).
	// A plugin's error is logged: it cannot keep a pod from stopping.
	if cur, err := s.sandboxes.Get(pod.ID); err == nil && cur.State == sandbox.StateReady {
		logNRI(ctx, s.nri.StopPodSandbox(ctx, nriPod(cur)), pod.ID)
	}
	if err := s.sandboxes.Stop(ctx, pod.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Stopped pod sandbox", "podSandboxID", pod.ID)
	return &criapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod's containers, its shim and everything the
// pod made. Removing an unknown pod succeeds (CRI: idempotent).
func (s *Server) RemovePodSandbox(ctx context.Context, req *criapi.RemovePodSandboxRequest) (*criapi.RemovePodSandboxResponse, error) {
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	// Alone: a container recorded after the list below would be left
	// without its pod.
	unlock, err := s.podLocks.lock(ctx, pod.ID, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var errs []error
	for _, id := range s.containers.InSandbox(pod.ID) {
		st := s.stateForNRI(ctx, id)
		_, err := s.containers.Remove(ctx, id)
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		s.cpu.forget(id)
		s.watchers.forget(ctx, id)
		logNRI(ctx, s.nri.RemoveContainer(ctx, id, s.nriInfo(ctx, pod.ID, id, st)), id)
	}
	s.images.Collect() // layers of removed images the containers pinned
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("remove pod sandbox %s: %w", pod.ID, err)
	}
	if err := s.shims.Shutdown(ctx, pod.ID); err != nil {
		return nil, fmt.Errorf("remove pod sandbox %s: %w", pod.ID, err)
	}
	cur, err := s.sandboxes.Get(pod.ID)
	if err == nil && cur.State == sandbox.StateReady {
		// Removed without a stop: plugins hear of the stop first.
		logNRI(ctx, s.nri.StopPodSandbox(ctx, nriPod(cur)), pod.ID)
	}
	if err := s.sandboxes.Remove(ctx, pod.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	logNRI(ctx, s.nri.RemovePodSandbox(ctx, nriPod(pod)), pod.ID)
	s.cpu.forget(podKey(pod.ID))
	klog.FromContext(ctx).V(2).Info("Removed pod sandbox", "podSandboxID", pod.ID)
	return &criapi.RemovePodSandboxResponse{}, nil
}
