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
//
// A watch that cannot be set (on v2 the shim's one inotify instance could
// not be made, or the host's inotify watches are spent) does not fail the
// container, as containerd's shim carries on without its OOM watch: the
// count is then read at the exit, which sees the OOM kill unless systemd
// removed the cgroup first. A container that
// cannot be made for want of an OOM watch is worse than a missed reason.
func (s *service) watchOOM(c *container) {
	if _, _, err := cgroups.ScopeOf(c.cgroup); err != nil {
		return
	}
	w, ok := s.cg.(cgroups.OOMWatcher)
	if !ok {
		return
	}
	stop, err := w.WatchOOM(c.cgroup, func() { c.oomSeen.Store(true) })
	if err != nil {
		s.logger.Error(err, "Created container without an OOM watch; its OOM kills are read at its exit", "containerID", c.id)
		return
	}
	c.stopOOM = stop
}

// endOOMWatch ends the watch of watchOOM, if any.
func (c *container) endOOMWatch() {
	if c.stopOOM != nil {
		c.stopOOM()
	}
}
