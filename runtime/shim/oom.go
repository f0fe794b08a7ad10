package shim

import (
	"github.com/crib-runtime/crib/cgroups"
)

// watchOOM listens for OOM kills in c's cgroup as they happen when it is a
// systemd scope (the systemd cgroup driver): systemd stops the scope and
// removes its cgroup about a millisecond after its last process is gone,
// before the reaper has even reported the init's exit, so the count that
// recordExit reads would be gone with it. Under cgroupfs the cgroup is
// the shim's until it removes it, the count read at the exit is exact, and
// nothing is watched.
func (s *service) watchOOM(c *container) error {
	if _, _, err := cgroups.ScopeOf(c.cgroup); err != nil {
		return nil
	}
	w, ok := s.cg.(cgroups.OOMWatcher)
	if !ok {
		return nil
	}
	stop, err := w.WatchOOM(c.cgroup, func() { c.oomSeen.Store(true) })
	if err != nil {
		return err
	}
	c.stopOOM = stop
	return nil
}

// endOOMWatch ends the watch of watchOOM, if any.
func (c *container) endOOMWatch() {
	if c.stopOOM != nil {
		c.stopOOM()
	}
}
