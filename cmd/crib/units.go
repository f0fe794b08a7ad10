package main

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/systemd"
	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

// openUnits connects to systemd under the systemd cgroup driver (nil
// under cgroupfs), at start, so that a node whose systemd cannot be
// reached, or a cgroup_root that is no slice, stops the daemon with the
// reason instead of failing every pod.
func openUnits(ctx context.Context, logger klog.Logger, cfg config.Config, files systemd.Files) (*systemd.Units, error) {
	if cfg.CgroupDriver != config.CgroupDriverSystemd {
		return nil, nil
	}
	root, err := (cgroups.Paths{Driver: cfg.CgroupDriver, Root: cfg.CgroupRoot}).Parent("")
	if err != nil {
		return nil, err
	}
	units := systemd.New(files, systemd.DialSystemd)
	units.Root = root
	version, err := units.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("cgroup_driver is %q: %w", cfg.CgroupDriver, err)
	}
	if version == 0 {
		version = -1 // logged as unknown
	}
	logger.Info("Cgroups are systemd's units", "systemdVersion", version)
	return units, nil
}

// useUnits hands units to the pods and containers; nil (cgroupfs) leaves
// their Units nil, not a nil pointer in an interface.
func useUnits(units *systemd.Units, pods *sandbox.Manager, containers *runtime.Manager) {
	if units == nil {
		return
	}
	pods.Units, containers.Units = units, units
}
