// Package manager picks the cgroups.Manager for a host: cgroup2 on unified
// hosts, the cgroup1 adapter on legacy and hybrid ones. It exists to break
// the cgroups ⇄ cgroup2/cgroup1 import cycle.
//
// Internal to crib; no API compatibility promised.
package manager

import (
	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup1"
	"github.com/crib-runtime/crib/cgroups/cgroup2"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Manager is a cgroups.Manager that holds file handles until Close.
type Manager interface {
	cgroups.Manager
	Close() error
}

// New returns the manager for host. fake is nil outside tests
// (cgroupstest.Tree.Fake).
func New(host *cgroups.Host, fake *cgfs.Fake) (Manager, error) {
	switch host.Mode {
	case cgroups.ModeUnified:
		return cgroup2.New(host.Unified, cgroup2.WithFake(fake))
	case cgroups.ModeHybrid, cgroups.ModeLegacy:
		return cgroup1.New(host, cgroup1.WithFake(fake))
	}
	return nil, cgroups.Preconditionf("cgroup mode %s is not supported", host.Mode)
}

// Open detects the host's cgroup mode from mountinfo (normally
// /proc/self/mountinfo) and returns its manager.
func Open(mountinfo string) (Manager, error) {
	host, err := cgroups.Detect(mountinfo)
	if err != nil {
		return nil, err
	}
	return New(host, nil)
}
