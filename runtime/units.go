package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/ocires"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Units hands containers' cgroups to the node's service manager under the
// systemd cgroup driver (cgroups/systemd.Units): each becomes a scope unit
// once its process exists, stopped before execve, and is stopped when the
// container is removed. nil is the cgroupfs driver.
type Units interface {
	// Adopt makes cgroup, where pid was born, a unit holding it, with r.
	Adopt(ctx context.Context, cgroup string, pid int, r *cgroups.Resources) error
	// Update gives the unit new limits before the shim writes them;
	// NotFound when there is no unit (not started).
	Update(ctx context.Context, cgroup string, r *cgroups.Resources) error
	// Release stops and forgets the unit; no unit is no error.
	Release(ctx context.Context, cgroup string) error
}

// adopt gives the container's cgroup to Units, with the pid of its process
// from Create, or from the shim when a start cut short by a daemon restart
// is taken up (Create answered AlreadyExists). The resources are the
// recorded spec's, which the shim applied.
func (m *Manager) adopt(ctx context.Context, shim Shim, c Container, created *shimapi.ContainerState) error {
	if m.Units == nil || c.Cgroup == "" {
		return nil
	}
	pid := created.GetPid()
	if pid == 0 {
		st, err := shim.State(ctx, &shimapi.ContainerRequest{Id: c.ID})
		if err != nil {
			return err
		}
		pid = st.GetPid()
	}
	var s specs.Spec
	if err := json.Unmarshal(c.Spec, &s); err != nil {
		return fmt.Errorf("decode recorded spec: %w", err)
	}
	var r *cgroups.Resources
	if s.Linux != nil {
		var err error
		if r, err = ocires.Convert(s.Linux.Resources); err != nil {
			return err
		}
	}
	return m.Units.Adopt(ctx, c.Cgroup, int(pid), r)
}

// updateUnit gives the container's unit r before the shim writes it. A
// container not started yet has none: its limits go with the spec.
func (m *Manager) updateUnit(ctx context.Context, c Container, r *specs.LinuxResources) error {
	if m.Units == nil || c.Cgroup == "" {
		return nil
	}
	res, err := ocires.Convert(r)
	if err != nil {
		return err
	}
	if err := m.Units.Update(ctx, c.Cgroup, res); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	return nil
}

// releaseUnit stops the container's unit, once its processes and cgroup
// are gone (a stop kills only what is left).
func (m *Manager) releaseUnit(ctx context.Context, c Container) error {
	if m.Units == nil || c.Cgroup == "" {
		return nil
	}
	return m.Units.Release(ctx, c.Cgroup)
}
