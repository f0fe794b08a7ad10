package cgroups

// Manager creates, configures, observes and removes cgroups on one host with
// cgroup v2 semantics; the cgroup1 adapter maps them onto v1 hierarchies.
//
// Every path is a cgroup path as the kubelet passes it, absolute from the
// hierarchy root ("/kubepods/burstable/pod<uid>/<containerID>"); build them
// with ContainerPath. A Manager only removes cgroups it is asked to remove and
// only writes interface files of the cgroup it is given, except for enabling
// controllers in the ancestors' cgroup.subtree_control on v2 (which a child
// cannot do for itself).
type Manager interface {
	// Create makes path and any missing ancestors, enables the controllers
	// r needs and applies r (nil: none). On failure every directory it
	// made is removed again.
	Create(path string, r *Resources) error
	// Update applies r to an existing cgroup in the order that keeps the
	// kernel's invariants (memory below memory+swap on v1) at every step.
	Update(path string, r *Resources) error
	// AddProc moves pid into path (on v1: into every hierarchy). It fails
	// if any hierarchy refuses.
	AddProc(path string, pid int) error
	// Stats reads CPU, memory, pids and PSI counters of path.
	Stats(path string) (*Stats, error)
	// OOMKills returns how many processes the OOM killer has killed in
	// path (and below) since it was created.
	OOMKills(path string) (uint64, error)
	// Kill sends SIGKILL to every process in path and its descendants.
	Kill(path string) error
	// Remove kills what is left in path and removes it and its
	// descendants bottom up, retrying EBUSY for a bounded time. A path
	// that does not exist is not an error.
	Remove(path string) error
	// Mode says which kind of hierarchy the manager drives.
	Mode() Mode
}
