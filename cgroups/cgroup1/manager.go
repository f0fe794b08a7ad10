// Package cgroup1 adapts cgroups.Manager's v2 semantics to cgroup v1
// hierarchies (legacy and hybrid hosts): a cgroup is a directory in every
// mounted hierarchy, weights become shares, swap becomes memory+swap.
// It could be deleted once v1 hosts are gone.
//
// Internal to crib; no API compatibility promised.
package cgroup1

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Manager drives the v1 hierarchies of one host.
type Manager struct {
	mode cgroups.Mode
	// roots holds one handle per hierarchy, in mountinfo order.
	roots []*cgfs.Root
	// ctl maps a controller ("cpu", "name=systemd") to its hierarchy.
	ctl map[string]*cgfs.Root
	// skips hears of the resources dropped for a missing controller.
	skips *cgroups.SkipNotifier
}

var _ cgroups.Manager = (*Manager)(nil)

// Option changes how New builds a Manager.
type Option func(*options)

type options struct {
	fake    *cgfs.Fake
	skipped func(cgroups.Skipped)
}

// WithFake replaces the kernel's mkdir and rmdir with fakes (cgroupstest).
func WithFake(f *cgfs.Fake) Option { return func(o *options) { o.fake = f } }

// WithSkipped sets what hears, once per controller, of resources Create and
// Update leave out because their controller is not mounted (hugetlb).
func WithSkipped(fn func(cgroups.Skipped)) Option { return func(o *options) { o.skipped = fn } }

// New returns a Manager for the v1 hierarchies of host. Hierarchies that
// do not show their root (bind mounts of a sub-cgroup) are used as they are:
// paths are relative to the mountpoint.
func New(host *cgroups.Host, opts ...Option) (*Manager, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if len(host.Hierarchies) == 0 {
		return nil, cgroups.Preconditionf("no cgroup v1 hierarchy mounted")
	}
	m := &Manager{mode: host.Mode, ctl: map[string]*cgfs.Root{}, skips: cgroups.NewSkipNotifier(o.skipped)}
	for _, h := range host.Hierarchies {
		root, err := cgfs.Open(h.Mountpoint, o.fake)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.roots = append(m.roots, root)
		for _, c := range h.Controllers {
			m.ctl[c] = root
		}
		if h.Name != "" {
			m.ctl["name="+h.Name] = root
		}
	}
	return m, nil
}

// Close releases the hierarchy handles.
func (m *Manager) Close() error {
	var errs []error
	for _, r := range m.roots {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// Mode implements cgroups.Manager: the host's mode (legacy or hybrid).
func (m *Manager) Mode() cgroups.Mode { return m.mode }

// Controllers lists the mounted v1 controllers.
func (m *Manager) Controllers() []string {
	var out []string
	for c := range m.ctl {
		out = append(out, c)
	}
	return out
}

type made struct {
	root *cgfs.Root
	rel  string
}

// Create implements cgroups.Manager: path is made in every hierarchy.
func (m *Manager) Create(path string, r *cgroups.Resources) (retErr error) {
	p, err := cgroups.OwnPath("create", path)
	if err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("create cgroup %s: %w", p, err)
	}
	r = m.applicable(p, r)
	if err := m.supports(r); err != nil {
		return fmt.Errorf("create cgroup %s: %w", p, err)
	}
	var created []made
	defer func() {
		if retErr == nil {
			return
		}
		var errs []error
		for i := len(created) - 1; i >= 0; i-- {
			if err := created[i].root.Rmdir(created[i].rel); err != nil {
				errs = append(errs, fmt.Errorf("roll back cgroup %s: %w", created[i].rel, err))
			}
		}
		retErr = errors.Join(retErr, errors.Join(errs...))
	}()
	leaf := cgroups.Rel(p)
	for _, root := range m.roots {
		rel := ""
		for el := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
			parent := rel
			if rel == "" {
				parent, rel = ".", el
			} else {
				rel += "/" + el
			}
			if err := root.Mkdir(rel); err == nil {
				created = append(created, made{root, rel})
			} else if !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create cgroup %s: %w", p, err)
			}
			// Every level, also one that someone else made with a
			// plain mkdir: a child's cpuset must be a subset of its
			// parent's, so one empty ancestor leaves every cgroup
			// below it empty.
			if root == m.ctl["cpuset"] {
				if err := inheritCpuset(root, parent, rel); err != nil {
					return fmt.Errorf("create cgroup %s: %w", p, err)
				}
			}
		}
	}
	if r != nil {
		return m.set(leaf, r)
	}
	return nil
}

// inheritCpuset fills the cpus or mems of a v1 cpuset cgroup that has none,
// as a new one has none (the kernel refuses every task of such a cpuset:
// ENOSPC), with the parent's. Going down from the root, the parent has been
// filled already, so each level gets the cpus and mems of its nearest
// ancestor that has them; runc's cpusetEnsureParent does the same, to
// ancestors it did not make too. A rollback leaves such fills in place:
// they are what any child of that ancestor needs.
func inheritCpuset(root *cgfs.Root, parent, rel string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := root.Read(rel, f)
		if err != nil {
			return err
		}
		if cur != "" {
			continue
		}
		v, err := root.Read(parent, f)
		if err != nil {
			return err
		}
		if v == "" {
			return cgroups.Preconditionf("inherit %s for /%s: the parent's is empty too", f, rel)
		}
		if err := root.Write(rel, f, v); err != nil {
			return err
		}
	}
	return nil
}

// applicable returns r without what this host has no controller for and
// the kubelet sends everywhere: hugetlb limits, which containerd and CRI-O
// skip with a warning when the hugetlb controller is missing.
func (m *Manager) applicable(p string, r *cgroups.Resources) *cgroups.Resources {
	if m.ctl["hugetlb"] != nil {
		return r
	}
	r, skipped := cgroups.WithoutHugetlb(p, r, "the hugetlb controller is not mounted on this cgroup v1 host")
	if skipped != nil {
		m.skips.Notify(*skipped)
	}
	return r
}

// supports says which part of r this host cannot do, naming the controller.
func (m *Manager) supports(r *cgroups.Resources) error {
	if r == nil {
		return nil
	}
	need := func(ok bool, c string) error {
		if ok && m.ctl[c] == nil {
			return cgroups.Invalidf("the %s controller is not mounted on this cgroup v1 host", c)
		}
		return nil
	}
	if len(r.Unified) > 0 {
		return cgroups.Invalidf("unified resources %v need cgroup v2; this host runs cgroup v1 (%s)", sortedKeys(r.Unified), m.mode)
	}
	return errors.Join(
		need(r.CPUWeight != nil || r.CPUMax != nil, "cpu"),
		need(r.CpusetCPUs != "" || r.CpusetMems != "", "cpuset"),
		need(r.MemoryMaxBytes != nil || r.MemorySwapMaxBytes != nil, "memory"),
		need(r.PidsMax != nil, "pids"),
		need(r.Devices != nil, "devices"),
		need(r.BlockIO != nil, "blkio"),
	)
}

// Update implements cgroups.Manager.
func (m *Manager) Update(path string, r *cgroups.Resources) error {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return err
	}
	if !m.exists(cgroups.Rel(p)) {
		return fmt.Errorf("update cgroup %s: %w", p, errdefs.ErrNotFound)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("update cgroup %s: %w", p, err)
	}
	r = m.applicable(p, r)
	if err := m.supports(r); err != nil {
		return fmt.Errorf("update cgroup %s: %w", p, err)
	}
	if r == nil {
		return nil
	}
	return m.set(cgroups.Rel(p), r)
}

// Exists implements cgroups.Manager.
func (m *Manager) Exists(path string) (bool, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return false, err
	}
	return m.exists(cgroups.Rel(p)), nil
}

func (m *Manager) exists(rel string) bool {
	for _, r := range m.roots {
		if r.Exists(rel, "") {
			return true
		}
	}
	return false
}

// AddProc implements cgroups.Manager: the pid joins path in every
// hierarchy; the error names each hierarchy that refused.
func (m *Manager) AddProc(path string, pid int) error {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return err
	}
	if pid <= 0 {
		return cgroups.Invalidf("add pid %d to cgroup %s: not a pid", pid, p)
	}
	var errs []error
	for _, r := range m.roots {
		if err := r.Write(cgroups.Rel(p), "cgroup.procs", strconv.Itoa(pid)); err != nil {
			errs = append(errs, fmt.Errorf("hierarchy %s: %w", r.Path(), err))
		}
	}
	return errors.Join(errs...)
}

// Placement implements cgroups.Manager: the cgroup's tasks file in every
// hierarchy.
func (m *Manager) Placement(path string) (*cgroups.Placement, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return nil, err
	}
	pl := &cgroups.Placement{}
	for _, r := range m.roots {
		f, err := r.OpenFile(cgroups.Rel(p), "tasks", unix.O_WRONLY)
		if err != nil {
			pl.Close()
			return nil, fmt.Errorf("placement in cgroup %s: %w", p, err)
		}
		pl.Tasks = append(pl.Tasks, f)
	}
	return pl, nil
}

// OOMKills implements cgroups.Manager from memory.oom_control's oom_kill
// (Linux 4.13), which counts kills in the cgroup and below.
func (m *Manager) OOMKills(path string) (uint64, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return 0, err
	}
	mem := m.ctl["memory"]
	if mem == nil {
		return 0, cgroups.Preconditionf("oom kills of %s: the memory controller is not mounted", p)
	}
	b, err := mem.ReadInto(cgroups.Rel(p), "memory.oom_control", make([]byte, 0, 128))
	if err != nil {
		return 0, err
	}
	return cgfs.KV(b, "oom_kill"), nil
}

// Kill implements cgroups.Manager. With the freezer the cgroup is frozen
// first so that no process can fork while its siblings are being killed,
// then every pid gets SIGKILL and the cgroup is thawed so they can die.
// A cgroup removed meanwhile (a container's, when its init exits) had no
// process left to kill: its files vanishing is not an error.
func (m *Manager) Kill(path string) error {
	p, err := cgroups.OwnPath("kill", path)
	if err != nil {
		return err
	}
	rel := cgroups.Rel(p)
	fr := m.ctl["freezer"]
	if fr == nil || !fr.Exists(rel, "") {
		var errs []error
		for _, r := range m.roots {
			if err := cgfs.KillTree(r, rel); err != nil && r.Exists(rel, "") {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	if err := fr.Write(rel, "freezer.state", "FROZEN"); err != nil {
		return goneOK(fr, rel, err)
	}
	cgfs.WaitFor(time.Second, func() bool {
		s, err := fr.Read(rel, "freezer.state")
		return err != nil || s == "FROZEN"
	})
	killErr := cgfs.KillTree(fr, rel)
	return goneOK(fr, rel, errors.Join(killErr, fr.Write(rel, "freezer.state", "THAWED")))
}

// goneOK drops err if the cgroup no longer exists in root: its files
// vanished because it was removed (ENOENT, or ENODEV while the kernel tears
// it down), and an empty cgroup has nothing to kill.
func goneOK(root *cgfs.Root, rel string, err error) error {
	// ENODEV comes only from a cgroup being destroyed, whose directory may
	// still be there for a moment: asking whether it exists would not do.
	if err != nil && (errors.Is(err, unix.ENODEV) || !root.Exists(rel, "")) {
		return nil
	}
	return err
}

// RemoveEmpty implements cgroups.Manager.
func (m *Manager) RemoveEmpty(path string) (bool, error) {
	p, err := cgroups.OwnPath("remove", path)
	if err != nil {
		return false, err
	}
	rel := cgroups.Rel(p)
	all := true
	var errs []error
	for _, r := range m.roots {
		removed, err := cgfs.RemoveEmpty(r, rel)
		if err != nil {
			errs = append(errs, fmt.Errorf("hierarchy %s: %w", r.Path(), err))
		}
		all = all && removed
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("remove cgroup %s: %w", p, errors.Join(errs...))
	}
	return all, nil
}

// removeUnused removes rel with one rmdir per hierarchy, the freezer's
// last, and stops at the first the kernel refuses or fails: the freezer
// then stays, for Kill to freeze what is left before killing it.
func (m *Manager) removeUnused(rel string) bool {
	fr := m.ctl["freezer"]
	for _, r := range m.roots {
		if r == fr {
			continue
		}
		if removed, err := cgfs.RemoveEmpty(r, rel); err != nil || !removed {
			return false
		}
	}
	if fr == nil {
		return true
	}
	removed, err := cgfs.RemoveEmpty(fr, rel)
	return err == nil && removed
}

// Remove implements cgroups.Manager.
func (m *Manager) Remove(path string) error {
	p, err := cgroups.OwnPath("remove", path)
	if err != nil {
		return err
	}
	rel := cgroups.Rel(p)
	// Most cgroups are removed once their processes are gone: one rmdir
	// per hierarchy then does it, without the freeze, the kill and the walk
	// below (about 0.3 ms of a container's teardown here). One the kernel
	// refuses (a process or a child cgroup in it) takes the whole way.
	if m.removeUnused(rel) {
		return nil
	}
	if !m.exists(rel) {
		return nil
	}
	killErr := m.Kill(p)
	var errs []error
	deadline := time.Now().Add(cgfs.RemoveTimeout)
	for _, r := range m.roots {
		if err := cgfs.RemoveTree(r, rel, deadline); err != nil {
			errs = append(errs, fmt.Errorf("hierarchy %s: %w", r.Path(), err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove cgroup %s: %w", p, errors.Join(append(errs, killErr)...))
	}
	return nil
}
