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

// Options are what New passes on to the manager it picks.
type Options struct {
	// Fake is nil outside tests (cgroupstest.Tree.Fake).
	Fake *cgfs.Fake
	// Skipped hears, once per controller, of the resources Create and
	// Update leave out because the host lacks their controller (hugetlb
	// limits, which the kubelet sends on every container). nil: nobody.
	Skipped func(cgroups.Skipped)
}

// New returns the manager for host.
func New(host *cgroups.Host, o Options) (Manager, error) {
	switch host.Mode {
	case cgroups.ModeUnified:
		return cgroup2.New(host.Unified, cgroup2.WithFake(o.Fake), cgroup2.WithSkipped(o.Skipped))
	case cgroups.ModeHybrid, cgroups.ModeLegacy:
		return cgroup1.New(host, cgroup1.WithFake(o.Fake), cgroup1.WithSkipped(o.Skipped))
	}
	return nil, cgroups.Preconditionf("cgroup mode %s is not supported", host.Mode)
}

// Open detects the host's cgroup mode from mountinfo (normally
// /proc/self/mountinfo) and returns its manager, for callers that create
// cgroups without resources or need not hear of skipped ones; the others
// use Detect and New with Options.Skipped.
func Open(mountinfo string) (Manager, error) {
	host, err := cgroups.Detect(mountinfo)
	if err != nil {
		return nil, err
	}
	return New(host, Options{})
}
