package cri

import (
	"context"
	"fmt"
	"strconv"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime/shimapi"
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
	if st.Status != shimapi.Status_RUNNING || st.Pid <= 0 {
		return nil, fmt.Errorf("create container %q: pid namespace target %s is not running: %w", name, id, errdefs.ErrFailedPrecondition)
	}
	return &pidTarget{id: id, pid: st.Pid}, nil
}

// nsPath is the target's pid namespace as the shim opens it.
func (t *pidTarget) nsPath() string { return "/proc/" + strconv.Itoa(t.pid) + "/ns/pid" }

// stillThere checks, once the new container exists, that the target's init
// still runs with the pid it had: the shim opened /proc/<pid>/ns/pid in
// between, and a pid is not reused while its process lives, so then the
// namespace joined was the target's and not that of a process that got its
// pid after it exited.
func (s *Server) stillThere(ctx context.Context, t *pidTarget) error {
	st, err := s.containers.Status(ctx, t.id)
	if err != nil {
		return fmt.Errorf("pid namespace target %s: %w", t.id, err)
	}
	if st.Status != shimapi.Status_RUNNING || st.Pid != t.pid {
		return fmt.Errorf("pid namespace target %s exited while the container was created: %w", t.id, errdefs.ErrFailedPrecondition)
	}
	return nil
}
