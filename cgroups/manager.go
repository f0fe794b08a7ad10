package cgroups

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Manager creates, configures, observes and removes cgroups on one host with
// cgroup v2 semantics; the cgroup1 adapter maps them onto v1 hierarchies.
//
// Every path is a cgroup path as the kubelet passes it, absolute from the
// hierarchy root ("/kubepods/burstable/pod<uid>/<containerID>"); build them
// with ContainerPath. A Manager only removes cgroups it is asked to remove and
// only writes interface files of the cgroup it is given, except for enabling
// controllers in the ancestors' cgroup.subtree_control on v2 (which a child
// cannot do for itself) and filling an ancestor's empty cpuset.cpus and
// cpuset.mems on v1 (an ancestor made by a plain mkdir, whose emptiness
// every cgroup below would inherit), as runc does.
type Manager interface {
	// Create makes path and any missing ancestors, enables the controllers
	// r needs and applies r (nil: none). On failure every directory it
	// made is removed again. Limits whose controller the host lacks and
	// that the kubelet sends everywhere (hugetlb) are left out and
	// reported (cgroups.Skipped); any other missing controller is an
	// error.
	Create(path string, r *Resources) error
	// Update applies r to an existing cgroup in the order that keeps the
	// kernel's invariants (memory below memory+swap on v1) at every step,
	// leaving out what Create leaves out.
	Update(path string, r *Resources) error
	// AddProc moves pid into path (on v1: into every hierarchy). It fails
	// if any hierarchy refuses.
	AddProc(path string, pid int) error
	// Placement opens what lets a process starting up be born in path
	// instead of being moved there (Placement). The caller closes it.
	Placement(path string) (*Placement, error)
	// Exists reports whether path is a cgroup (on v1: in any hierarchy).
	// It reads no file, unlike Stats, whose memory.stat makes the kernel
	// flush the memory counters of the whole subtree.
	Exists(path string) (bool, error)
	// Stats reads CPU, memory, pids and PSI counters of path.
	Stats(path string) (*Stats, error)
	// Metrics reads Stats and what the metrics RPCs report beyond them:
	// memory detail, limits, block I/O and pids of path and below.
	Metrics(path string) (*Metrics, error)
	// OOMKills returns how many processes the OOM killer has killed in
	// path (and below) since it was created.
	OOMKills(path string) (uint64, error)
	// Kill sends SIGKILL to every process in path and its descendants.
	Kill(path string) error
	// Remove kills what is left in path and removes it and its
	// descendants bottom up, retrying EBUSY for a bounded time. A path
	// that does not exist is not an error.
	Remove(path string) error
	// RemoveEmpty removes path only if nothing uses it: one rmdir per
	// hierarchy, which the kernel refuses (EBUSY) while the cgroup holds
	// a process or a child cgroup, so nothing is killed and nothing below
	// is touched. It reports whether path is gone (a missing path is);
	// a path in use is no error. It is for cgroups crib made that others
	// may have used since (a pod's missing parents): on v1 a hierarchy
	// where path is unused loses it even if another still uses it.
	RemoveEmpty(path string) (bool, error)
	// Mode says which kind of hierarchy the manager drives.
	Mode() Mode
}

// OOMWatcher is what the cgroup1 and cgroup2 managers offer beside
// Manager: OOM kills as they happen, for a cgroup that someone else may
// remove as soon as its last process is gone (a systemd scope: systemd
// prunes its cgroup about a millisecond after it empties, before the
// exit path can read OOMKills). containerd's and CRI-O's shims learn of
// OOM kills the same way.
type OOMWatcher interface {
	// WatchOOM calls seen each time path reports an OOM kill (v2:
	// memory.events' oom_kill grew) or, on v1, an OOM (the
	// memory.oom_control event, as containerd takes it), until stop is
	// called or path is removed. seen must not block: on v2 the watches of
	// one manager share one goroutine. A path already watched is refused.
	WatchOOM(path string, seen func()) (stop func(), err error)
}

// Placement holds the files through which a new process enters a cgroup
// as it starts, instead of being moved there by a write of its pid: moving
// another process takes the kernel's global threadgroup lock, whose first
// taking after a quiet spell waits out an RCU grace period (~15 ms).
type Placement struct {
	// Tasks are the cgroup's tasks files, one per v1 hierarchy: a
	// single-threaded process writes "0" to each to move itself, which
	// skips that lock, and its children are born there.
	Tasks []*os.File
	// Dir is the cgroup's directory on v2, for clone3(CLONE_INTO_CGROUP).
	Dir *os.File
}

// AddProc moves pid into the v2 cgroup by a write of its pid, for a
// kernel that could not clone it there (no CLONE_INTO_CGROUP). On v1 the
// tasks files are the way in, and this does nothing.
func (p *Placement) AddProc(pid int) error {
	if p == nil || p.Dir == nil {
		return nil
	}
	fd, err := unix.Openat(int(p.Dir.Fd()), "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, err = unix.Write(fd, []byte(strconv.Itoa(pid)))
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("add pid %d to cgroup %s: %w", pid, p.Dir.Name(), err)
	}
	return nil
}

// Close closes every file.
func (p *Placement) Close() {
	if p == nil {
		return
	}
	for _, f := range p.Tasks {
		_ = f.Close()
	}
	if p.Dir != nil {
		_ = p.Dir.Close()
	}
}
