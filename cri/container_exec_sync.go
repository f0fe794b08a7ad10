package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ExecSync runs a command in a running container with the container's own
// identity, environment and capabilities, and returns its output and exit code.
func (s *Server) ExecSync(ctx context.Context, req *criapi.ExecSyncRequest) (*criapi.ExecSyncResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec sync: cmd is empty: %w", errdefs.ErrInvalidArgument)
	}
	id, err := s.containers.Resolve(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	st, err := s.containers.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	if toCRIState(st.Status) != criapi.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("exec sync in container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	data, err := json.Marshal(execProcess(st, req.GetCmd()))
	if err != nil {
		return nil, fmt.Errorf("exec sync in container %s: %w", id, err)
	}
	resp, err := s.containers.ExecSync(ctx, id, data, time.Duration(req.GetTimeout())*time.Second)
	if err != nil {
		return nil, err
	}
	return &criapi.ExecSyncResponse{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode}, nil
}
