package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec returns a single-use URL of the streaming server for an exec
// session in a running container.
func (s *Server) Exec(ctx context.Context, req *criapi.ExecRequest) (*criapi.ExecResponse, error) {
	if s.streams == nil {
		return nil, fmt.Errorf("exec: the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	st, err := s.runningContainer(ctx, req.GetContainerId(), "exec in")
	if err != nil {
		return nil, err
	}
	id := st.ID
	r := proto.Clone(req).(*criapi.ExecRequest)
	r.ContainerId = id
	resp, err := s.streams.GetExec(r)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %v: %w", id, err, errdefs.ErrInvalidArgument)
	}
	return resp, nil
}

// Attach returns a single-use URL of the streaming server for a session on
// a running container's stdio.
func (s *Server) Attach(ctx context.Context, req *criapi.AttachRequest) (*criapi.AttachResponse, error) {
	if s.streams == nil {
		return nil, fmt.Errorf("attach: the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	st, err := s.runningContainer(ctx, req.GetContainerId(), "attach to")
	if err != nil {
		return nil, err
	}
	id := st.ID
	if req.GetStdin() && !st.Stdin {
		return nil, fmt.Errorf("attach to container %s: stdin requested but the container was created without stdin: %w", id, errdefs.ErrInvalidArgument)
	}
	r := proto.Clone(req).(*criapi.AttachRequest)
	r.ContainerId = id
	resp, err := s.streams.GetAttach(r)
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %v: %w", id, err, errdefs.ErrInvalidArgument)
	}
	return resp, nil
}

// PortForward returns a single-use URL of the streaming server for
// forwarding ports of a ready pod.
func (s *Server) PortForward(_ context.Context, req *criapi.PortForwardRequest) (*criapi.PortForwardResponse, error) {
	if s.streams == nil {
		return nil, fmt.Errorf("port forward: the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	pod, err := s.sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*criapi.PortForwardRequest)
	r.PodSandboxId = pod.ID
	resp, err := s.streams.GetPortForward(r)
	if err != nil {
		return nil, fmt.Errorf("port forward to pod %s: %v: %w", pod.ID, err, errdefs.ErrInvalidArgument)
	}
	return resp, nil
}
