// Package cgroup2 implements cgroups.Manager on the unified hierarchy
// (cgroup v2), crib's default.
//
// Internal to crib; no API compatibility promised.
package cgroup2

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Manager drives one cgroup2 mount.
type Manager struct {
	root *cgfs.Root
	// skips hears of the resources dropped for a missing controller.
	skips *cgroups.SkipNotifier
	// oom is the one inotify instance of the OOM watches (oom.go).
	oom oomWatches
}

var _ cgroups.Manager = (*Manager)(nil)

// Option changes how New builds a Manager.
type Option func(*options)

type options struct {
	fake    *cgfs.Fake
	skipped func(cgroups.Skipped)
}

// WithFake replaces the kernel's mkdir and rmdir of cgroups with fakes that
// also make and drop interface files; cgroupstest uses it for trees in
// t.TempDir().
func WithFake(f *cgfs.Fake) Option { return func(o *options) { o.fake = f } }

// WithSkipped sets what hears, once per controller, of resources Create and
// Update leave out because the hierarchy does not offer their controller
// (hugetlb).
func WithSkipped(fn func(cgroups.Skipped)) Option { return func(o *options) { o.skipped = fn } }

// New returns a Manager for the cgroup2 hierarchy mounted at mountpoint
// (cgroups.Host.Unified).
func New(mountpoint string, opts ...Option) (*Manager, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	root, err := cgfs.Open(mountpoint, o.fake)
	if err != nil {
		return nil, err
	}
	return &Manager{root: root, skips: cgroups.NewSkipNotifier(o.skipped)}, nil
}

// Close releases the hierarchy handle.
func (m *Manager) Close() error { return m.root.Close() }

// Mode implements cgroups.Manager.
func (m *Manager) Mode() cgroups.Mode { return cgroups.ModeUnified }

// Available returns cgroup.controllers of path: the controllers its parent
// lets it use.
func (m *Manager) Available(path string) ([]string, error) {
	return m.list(path, "cgroup.controllers")
}

// Enabled returns cgroup.subtree_control of path: the controllers its
// children get.
func (m *Manager) Enabled(path string) ([]string, error) {
	return m.list(path, "cgroup.subtree_control")
}

func (m *Manager) list(path, file string) ([]string, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return nil, err
	}
	s, err := m.root.Read(cgroups.Rel(p), file)
	if err != nil {
		return nil, err
	}
	f := strings.Fields(s)
	for i := range f {
		// The kernel never shows "+"; fake trees keep what was written.
		f[i] = strings.TrimPrefix(f[i], "+")
	}
	return f, nil
}

// defaultControllers are enabled for every cgroup crib creates when the
// parent has them, so that stats and OOM counters exist without limits.
var defaultControllers = []string{"cpu", "memory", "pids"}

// Create implements cgroups.Manager.
func (m *Manager) Create(path string, r *cgroups.Resources) (retErr error) {
	p, err := cgroups.OwnPath("create", path)
	if err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("create cgroup %s: %w", p, err)
	}
	parent := "/"
	avail, err := m.Available(parent)
	if err != nil {
		return fmt.Errorf("create cgroup %s: %w", p, err)
	}
	r = m.applicable(p, r, avail)
	need := needed(r)
	var created []string
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, m.rollback(created))
		}
	}()
	for el := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		// A child's cgroup.controllers is by definition its parent's
		// cgroup.subtree_control, so what enable leaves on is what the
		// next level may enable.
		if avail, err = m.enable(parent, need, avail); err != nil {
			return fmt.Errorf("create cgroup %s: %w", p, err)
		}
		child := strings.TrimSuffix(parent, "/") + "/" + el
		if err := m.root.Mkdir(cgroups.Rel(child)); err != nil {
			if !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("create cgroup %s: %w", p, err)
			}
		} else {
			created = append(created, child)
		}
		parent = child
	}
	if r != nil {
		if err := m.set(cgroups.Rel(p), r); err != nil {
			return err
		}
	}
	return nil
}

// enable turns on in parent's cgroup.subtree_control every controller of
// need (an error when parent lacks one: avail is its cgroup.controllers) and
// every default controller parent has. It writes only what is missing, so an
// ancestor that the kubelet set up is left as it is, and returns the
// controllers now enabled.
func (m *Manager) enable(parent string, need, avail []string) ([]string, error) {
	on, err := m.Enabled(parent)
	if err != nil {
		return nil, err
	}
	var add []string
	for _, c := range need {
		if !slices.Contains(avail, c) {
			return nil, cgroups.Invalidf("controller %s is not available in %s (cgroup.controllers %q)", c, parent, strings.Join(avail, " "))
		}
		if !slices.Contains(on, c) && !slices.Contains(add, c) {
			add = append(add, c)
		}
	}
	for _, c := range defaultControllers {
		if slices.Contains(avail, c) && !slices.Contains(on, c) && !slices.Contains(add, c) {
			add = append(add, c)
		}
	}
	if len(add) == 0 {
		return on, nil
	}
	plus := make([]string, len(add))
	for i := range add {
		plus[i] = "+" + add[i]
	}
	if err := m.root.Write(cgroups.Rel(parent), "cgroup.subtree_control", strings.Join(plus, " ")); err != nil {
		return nil, err
	}
	return append(on, add...), nil
}

// applicable returns r without what the hierarchy has no controller for
// and the kubelet sends everywhere: hugetlb limits, which containerd and
// CRI-O skip with a warning when the hugetlb controller is missing. rootAvail
// is the root's cgroup.controllers: what the kernel (or whoever delegated
// the hierarchy) offers at all. A controller the root offers but an ancestor
// does not pass on is still an error (enable).
func (m *Manager) applicable(p string, r *cgroups.Resources, rootAvail []string) *cgroups.Resources {
	if slices.Contains(rootAvail, "hugetlb") {
		return r
	}
	r, skipped := cgroups.WithoutHugetlb(p, r, "the cgroup v2 hierarchy does not offer the hugetlb controller")
	if skipped != nil {
		m.skips.Notify(*skipped)
	}
	return r
}

// needed lists the controllers r writes files of.
func needed(r *cgroups.Resources) []string {
	if r == nil {
		return nil
	}
	var c []string
	add := func(ok bool, name string) {
		if ok && !slices.Contains(c, name) {
			c = append(c, name)
		}
	}
	add(r.CPUWeight != nil || r.CPUMax != nil, "cpu")
	add(r.CpusetCPUs != "" || r.CpusetMems != "", "cpuset")
	add(r.MemoryMaxBytes != nil || r.MemorySwapMaxBytes != nil, "memory")
	add(r.PidsMax != nil, "pids")
	add(len(r.HugetlbMaxBytes) > 0, "hugetlb")
	add(r.BlockIO != nil, "io")
	for k := range r.Unified {
		add(cgroups.Controller(k) != "", cgroups.Controller(k))
	}
	return c
}

// rollback removes the directories Create made, deepest first.
func (m *Manager) rollback(created []string) error {
	var errs []error
	for i := len(created) - 1; i >= 0; i-- {
		if err := m.root.Rmdir(cgroups.Rel(created[i])); err != nil {
			errs = append(errs, fmt.Errorf("roll back cgroup %s: %w", created[i], err))
		}
	}
	return errors.Join(errs...)
}

// Update implements cgroups.Manager.
func (m *Manager) Update(path string, r *cgroups.Resources) error {
	p, err := m.existing(path)
	if err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("update cgroup %s: %w", p, err)
	}
	if r == nil {
		return nil
	}
	if len(r.HugetlbMaxBytes) > 0 {
		avail, err := m.Available("/")
		if err != nil {
			return fmt.Errorf("update cgroup %s: %w", p, err)
		}
		r = m.applicable(p, r, avail)
	}
	return m.set(cgroups.Rel(p), r)
}

func (m *Manager) existing(path string) (string, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return "", err
	}
	if !m.root.Exists(cgroups.Rel(p), "") {
		return "", fmt.Errorf("cgroup %s: %w", p, errdefs.ErrNotFound)
	}
	return p, nil
}

// AddProc implements cgroups.Manager.
func (m *Manager) AddProc(path string, pid int) error {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return err
	}
	if pid <= 0 {
		return cgroups.Invalidf("add pid %d to cgroup %s: not a pid", pid, p)
	}
	return m.root.Write(cgroups.Rel(p), "cgroup.procs", strconv.Itoa(pid))
}

// Exists implements cgroups.Manager.
func (m *Manager) Exists(path string) (bool, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return false, err
	}
	return m.root.Exists(cgroups.Rel(p), ""), nil
}

// Placement implements cgroups.Manager: the cgroup's directory.
func (m *Manager) Placement(path string) (*cgroups.Placement, error) {
	p, err := m.existing(path)
	if err != nil {
		return nil, err
	}
	dir, err := m.root.OpenFile(cgroups.Rel(p), "", unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("placement in cgroup %s: %w", p, err)
	}
	return &cgroups.Placement{Dir: dir}, nil
}

// OOMKills implements cgroups.Manager from memory.events' oom_kill, which
// counts the cgroup and its descendants.
func (m *Manager) OOMKills(path string) (uint64, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return 0, err
	}
	b, err := m.root.ReadInto(cgroups.Rel(p), "memory.events", make([]byte, 0, 256))
	if err != nil {
		return 0, err
	}
	return cgfs.KV(b, "oom_kill"), nil
}

// Kill implements cgroups.Manager with cgroup.kill (Linux 5.14), which kills
// the whole subtree atomically: no fork can escape. Older kernels fall back
// to freeze, SIGKILL each pid, thaw.
func (m *Manager) Kill(path string) error {
	p, err := cgroups.OwnPath("kill", path)
	if err != nil {
		return err
	}
	rel := cgroups.Rel(p)
	err = m.root.Write(rel, "cgroup.kill", "1")
	if errors.Is(err, unix.ENODEV) {
		// The kernel answers ENODEV for the files of a cgroup that is
		// being removed (a container's, when its init exits): it is empty.
		return nil
	}
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return err
	}
	if !m.root.Exists(rel, "") {
		return nil // removed meanwhile (a container's, when its init exits): nothing left to kill
	}
	if err := m.killSlow(rel); err != nil && m.root.Exists(rel, "") {
		return err
	}
	return nil
}

func (m *Manager) killSlow(rel string) error {
	if err := m.root.Write(rel, "cgroup.freeze", "1"); err != nil {
		return err
	}
	defer m.root.Write(rel, "cgroup.freeze", "0") //nolint:errcheck // best effort; the cgroup is going away
	cgfs.WaitFor(time.Second, func() bool {
		b, err := m.root.ReadInto(rel, "cgroup.events", nil)
		if err != nil {
			return true
		}
		frozen := false
		cgfs.EachKV(b, func(k []byte, v uint64) { frozen = frozen || string(k) == "frozen" && v == 1 })
		return frozen
	})
	return cgfs.KillTree(m.root, rel)
}

// RemoveEmpty implements cgroups.Manager.
func (m *Manager) RemoveEmpty(path string) (bool, error) {
	p, err := cgroups.OwnPath("remove", path)
	if err != nil {
		return false, err
	}
	removed, err := cgfs.RemoveEmpty(m.root, cgroups.Rel(p))
	if err != nil {
		return false, fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	return removed, nil
}

// Remove implements cgroups.Manager.
func (m *Manager) Remove(path string) error {
	p, err := cgroups.OwnPath("remove", path)
	if err != nil {
		return err
	}
	rel := cgroups.Rel(p)
	// Most cgroups are removed once their processes are gone: one rmdir
	// then does it. One the kernel refuses (a process or a child cgroup in
	// it) is killed and removed as a tree.
	if removed, err := cgfs.RemoveEmpty(m.root, rel); err == nil && removed {
		return nil
	}
	if !m.root.Exists(rel, "") {
		return nil
	}
	killErr := m.Kill(p)
	if err := cgfs.RemoveTree(m.root, rel, time.Now().Add(cgfs.RemoveTimeout)); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, errors.Join(err, killErr))
	}
	return nil
}
