package cri

import (
	"context"
	"fmt"
	"strconv"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
)

// pidTarget is the container whose pid namespace a new container joins
// (pid mode TARGET, `kubectl debug --target`), and its init's pid when
// the namespace was looked up.
type pidTarget struct {
	id  string
	pid int
}

// targetOf returns the TARGET of a container config's pid namespace, nil
// for every other mode. The target must be a running container of the same
// pod: the CRI puts ephemeral containers next to the container they debug,
// and joining another pod's processes is not the pod's to decide.
func (s *Server) targetOf(ctx context.Context, podID string, cfg *criapi.ContainerConfig) (*pidTarget, error) {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetPid() != criapi.NamespaceMode_TARGET {
		return nil, nil
	}
	name := cfg.GetMetadata().GetName()
	if ns.GetTargetId() == "" {
		return nil, fmt.Errorf("create container %q: pid namespace mode TARGET without a target_id: %w", name, errdefs.ErrInvalidArgument)
	}
	id, err := s.containers.Resolve(ns.GetTargetId())
	if err != nil {
		return nil, fmt.Errorf("create container %q: pid namespace target: %w", name, err)
	}
	st, err := s.containers.Status(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("create container %q: pid namespace target: %w", name, err)
	}
	if st.SandboxID != podID {
		return nil, fmt.Errorf("create container %q: pid namespace target %s is not in pod %s: %w", name, id, podID, errdefs.ErrNotFound)
	}
	if st.Status != runtime.StatusRunning || st.Pid <= 0 {
		return nil, fmt.Errorf("create container %q: pid namespace target %s is not running: %w", name, id, errdefs.ErrFailedPrecondition)
	}
	return &pidTarget{id: id, pid: st.Pid}, nil
}

// nsPath is the target's pid namespace as the shim opens it.
func (t *pidTarget) nsPath() string { return "/proc/" + strconv.Itoa(t.pid) + "/ns/pid" }
