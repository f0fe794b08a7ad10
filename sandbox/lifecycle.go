package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/sysctl"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// runStep is one step of Run and how to undo it.
type runStep struct {
	name string
	do   func(ctx context.Context, p *Pod, c *Config) error
	undo func(ctx context.Context, p *Pod) error // nil: nothing to undo
}

// steps are Run's steps in order. The record comes first (as CREATING),
// so a daemon killed at any later point leaves a pod that Stop and Remove
// clean up; hosts is written after the network because it names the pod's
// IPs.
func (m *Manager) steps() []runStep {
	return []runStep{
		// Its undo is in Run: the record goes only if every other undo
		// succeeded.
		{"record", func(_ context.Context, p *Pod, _ *Config) error { return m.Store.Create(p) }, nil},
		{"directory", func(_ context.Context, p *Pod, _ *Config) error {
			if err := mkdirPod(m.StateDir, p.Dir); err != nil {
				return err
			}
			return openPodToRoot(p)
		},
			func(_ context.Context, p *Pod) error { return removeDir(p) }},
		{"namespaces", m.pin, func(_ context.Context, p *Pod) error { return unpin(p) }},
		{"cgroup", m.createCgroup, m.removeCgroup},
		{"shm", m.mountShm, func(_ context.Context, p *Pod) error { return unmountShm(p) }},
		{"network and after-setup hook", m.networkAndHook, func(ctx context.Context, p *Pod) error {
			return errors.Join(m.beforeTeardown(ctx, p), m.teardownNetwork(ctx, p))
		}},
		// The cgroup step's undo stops the unit, after the hook's has
		// stopped the pause.
		{"pause unit", m.adoptPause, nil},
		// After CNI: per-interface keys (net.ipv4.conf.eth0.*) name the
		// pod's interfaces, as runc writes them at container start.
		{"sysctls", func(_ context.Context, p *Pod, _ *Config) error { return applySysctls(p) }, nil},
		{"files", m.writeFiles, nil}, // removed with the directory
		{"before-ready hook", m.hook(func() Hook { return m.BeforeReady }), m.hookUndo(func() Hook { return m.AfterUnready })},
		{"ready", func(_ context.Context, p *Pod, _ *Config) error {
			p.State = StateReady
			if err := m.Store.Update(p); err != nil {
				// Not ready: the undo sees a pod still being made, whose
				// shim AfterSetup's undo stops (a full disk got here).
				p.State = StateCreating
				return err
			}
			return nil
		}, nil},
	}
}

// Run does the sandbox part of RunPodSandbox: a record, the pod's
// directory, pinned namespaces (unless the host's), its cgroup, /dev/shm,
// the CNI network (unless the host's), hosts, resolv.conf and hostname,
// then AfterSetup. On any failure every step done is undone, in reverse,
// on a context that survives ctx's cancellation; the undo errors are
// joined to the failure.
func (m *Manager) Run(ctx context.Context, c Config) (_ *Pod, retErr error) {
	sysctls, err := c.validate()
	if err != nil {
		return nil, err
	}
	if !c.HostNetwork && m.Network == nil {
		return nil, fmt.Errorf("run pod %s: no pod network is configured: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	p, err := m.newPod(&c, sysctls)
	if err != nil {
		return nil, err
	}
	if m.Cgroups == nil {
		p.Cgroup = ""
	}
	defer m.lock(p.ID)()
	var done []func(context.Context) error
	recorded := false
	defer func() {
		if retErr == nil {
			return
		}
		retErr = undo(ctx, retErr, done)
		if !recorded {
			return
		}
		// A rollback that left something behind keeps the record, as
		// NOTREADY, so that the kubelet's Remove finds and retries it.
		var uerr error
		if errors.Is(retErr, errRolledBack) {
			p.State = StateNotReady
			uerr = m.Store.Update(p)
		} else {
			uerr = m.Store.Delete(p.ID)
		}
		if uerr != nil {
			retErr = errors.Join(retErr, fmt.Errorf("roll back: %w", uerr))
		}
	}()
	for _, s := range m.steps() {
		if err := s.do(ctx, p, &c); err != nil {
			return nil, fmt.Errorf("run pod %s: %s: %w", p.ID, s.name, err)
		}
		recorded = true
		if s.undo != nil {
			u := s.undo
			done = append(done, func(ctx context.Context) error { return u(ctx, p) })
		}
		if m.failAfter != nil {
			if err := m.failAfter(s.name); err != nil {
				return nil, fmt.Errorf("run pod %s: after %s: %w", p.ID, s.name, err)
			}
		}
	}
	return clonePod(p), nil
}

// mkdirPod makes the pod's state directory, 0700 under a 0700 parent: it
// holds the pod's /dev/shm, a 1777 tmpfs that must stay 1777 for the pod's
// users but that no host user may reach (shared memory with the pod), and
// its namespace pins. Containers see these through mounts made as root.
func mkdirPod(stateDir, dir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return err
	}
	// Mkdir, not MkdirAll: a directory left by someone else is not ours to
	// fill or, on rollback, to remove.
	return os.Mkdir(dir, 0o700)
}

// openPodToRoot lets the pod's own root (a hostUsers: false pod) search
// the pod's directory: its containers' init binds the pod's files from
// there while it is root only in the pod's user namespace. 0710 with the
// group of container root's host gid, as containerd does for bundles;
// other host users stay out.
func openPodToRoot(p *Pod) error {
	if p.UserNS == "" {
		return nil
	}
	if err := os.Chown(p.Dir, 0, int(p.UserMaps.GIDs[0].HostID)); err != nil {
		return err
	}
	return os.Chmod(p.Dir, 0o710)
}

func (m *Manager) pin(_ context.Context, p *Pod, _ *Config) error {
	var kinds []nsfs.Kind
	if p.NetNS != "" {
		kinds = append(kinds, nsfs.Net, nsfs.UTS)
	}
	if p.IPCNS != "" {
		kinds = append(kinds, nsfs.IPC)
	}
	var (
		paths map[nsfs.Kind]string
		err   error
	)
	switch {
	case p.UserNS != "":
		if m.NsHolder == nil {
			return fmt.Errorf("pod user namespace: no holder command is configured: %w", errdefs.ErrFailedPrecondition)
		}
		paths, err = nsfs.PinUser(p.Dir+"/ns", m.NsHolder, p.UserMaps, kinds...)
	case len(kinds) == 0:
		return nil
	default:
		paths, err = nsfs.Pin(p.Dir+"/ns", kinds...)
	}
	if err != nil {
		return err
	}
	for k, want := range map[nsfs.Kind]string{nsfs.Net: p.NetNS, nsfs.UTS: p.UTSNS, nsfs.IPC: p.IPCNS, nsfs.User: p.UserNS} {
		if paths[k] != want {
			return fmt.Errorf("pinned %s namespace at %q, want %q", k, paths[k], want)
		}
	}
	if p.NetNS != "" {
		// A new network namespace starts with lo down; pods expect
		// 127.0.0.1 to work whatever the CNI config (containerd and CRI-O
		// add the loopback plugin for the same reason).
		if err := nsfs.Do(p.NetNS, nsfs.Net, loopbackUp); err != nil {
			return err
		}
	}
	return nil
}

// loopbackUp sets IFF_UP on lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring lo up: set flags: %w", err)
	}
	return nil
}

func unpin(p *Pod) error {
	var errs []error
	for _, ns := range []string{p.NetNS, p.IPCNS, p.UTSNS, p.UserNS} {
		if ns != "" {
			errs = append(errs, nsfs.Unpin(ns))
		}
	}
	return errors.Join(errs...)
}

// createCgroup makes the pod's cgroup parent, when it does not exist, and
// the pod's own cgroup under it (a pod with a pause process only).
// Ancestors that did not exist (the kubelet makes the parent; crictl users
// often do not) are recorded, so the pod's removal takes them too when
// they are empty: crib removes only what it made. Under the systemd driver
// only slices in crib's root slice or the kubelet's may be made (Units'
// MayCreate): a slice elsewhere may be filled by its owner (logind) while
// the pod lives, and removing the pod stops the slice's unit.
func (m *Manager) createCgroup(_ context.Context, p *Pod, _ *Config) error {
	if m.Cgroups == nil || p.CgroupParent == "" {
		return nil
	}
	p.CreatedCgroups = nil
	for dir := p.CgroupParent; dir != "/" && dir != "." && !m.Cgroups.Exists(dir); dir = path.Dir(dir) {
		if m.Units != nil {
			if err := m.Units.MayCreate(dir); err != nil {
				return err
			}
		}
		p.CreatedCgroups = append(p.CreatedCgroups, dir)
	}
	switch {
	case p.Cgroup != "":
		return m.Cgroups.Create(p.Cgroup)
	case len(p.CreatedCgroups) > 0:
		return m.Cgroups.Create(p.CgroupParent)
	}
	return nil
}

// removeCgroup removes the pod's cgroup, with what is left in it, then
// the ancestors it created, deepest first, unless another pod still lives
// under them. An ancestor is only ever removed empty (RemoveEmpty), never
// killed: crib made it, but others may have put processes there since (a
// user's sessions in a user-<uid>.slice made before the user logged in),
// and crib's pods are not all it holds. One in use is left, with those
// above it. Under the systemd driver each unit is stopped once its cgroup
// is gone: the pause's scope, and slices systemd made when crib's scopes
// named them; a slice left in use is not stopped (that would stop what
// is in it).
func (m *Manager) removeCgroup(ctx context.Context, p *Pod) error {
	if m.Cgroups == nil {
		return nil
	}
	if p.Cgroup != "" {
		if err := m.Cgroups.Remove(p.Cgroup); err != nil {
			return err
		}
		if err := m.releaseUnit(ctx, p.Cgroup); err != nil {
			return err
		}
	}
	for _, dir := range p.CreatedCgroups {
		for _, other := range m.Store.List(Filter{}) {
			if other.ID != p.ID && (other.CgroupParent == dir || strings.HasPrefix(other.CgroupParent, dir+"/")) {
				return nil
			}
		}
		removed, err := m.Cgroups.RemoveEmpty(dir)
		if err != nil || !removed {
			return err
		}
		if err := m.releaseUnit(ctx, dir); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) releaseUnit(ctx context.Context, dir string) error {
	if m.Units == nil {
		return nil
	}
	return m.Units.Release(ctx, dir)
}

// adoptPause makes the pause's cgroup a unit once the pause runs (it is
// crib's own code, confined before it runs: nothing of a user's runs
// before the unit exists).
func (m *Manager) adoptPause(ctx context.Context, p *Pod, _ *Config) error {
	if m.Units == nil || p.Cgroup == "" || p.PausePID == 0 {
		return nil
	}
	return m.Units.Adopt(ctx, p.Cgroup, p.PausePID, nil)
}

func (m *Manager) mountShm(_ context.Context, p *Pod, c *Config) error {
	if p.ShmPath == "" {
		return nil
	}
	size := c.ShmSize
	if size == 0 {
		size = defaultShmSize
	}
	return MountShm(p.ShmPath, size)
}

func unmountShm(p *Pod) error {
	if p.ShmPath == "" {
		return nil
	}
	return UnmountShm(p.ShmPath)
}

func (m *Manager) setupNetwork(ctx context.Context, p *Pod, _ *Config) error {
	if p.HostNetwork() {
		return nil
	}
	res, err := m.Network.Setup(ctx, p.cniPod())
	if err != nil {
		return err
	}
	for _, ip := range res.IPs {
		p.IPs = append(p.IPs, ip.String())
	}
	return nil
}

// networkAndHook runs CNI ADD and the after-setup hook (the pod's shim and
// pause process) at once: neither needs the other, and each is mostly
// waiting for processes it starts. If one fails, the other's work is
// undone before returning.
func (m *Manager) networkAndHook(ctx context.Context, p *Pod, c *Config) error {
	q := clonePod(p) // the hook's copy: setupNetwork writes p meanwhile
	hooked := make(chan error, 1)
	go func() { hooked <- m.afterSetup(ctx, q, c) }()
	nerr := m.setupNetwork(ctx, p, c)
	herr := <-hooked
	if herr == nil {
		p.PausePID = q.PausePID
	}
	undo := context.WithoutCancel(ctx)
	switch {
	case nerr == nil && herr == nil:
		return nil
	case nerr == nil:
		return errors.Join(fmt.Errorf("after-setup hook: %w", herr), m.teardownNetwork(undo, p))
	case herr == nil:
		return errors.Join(fmt.Errorf("network: %w", nerr), m.beforeTeardown(undo, p))
	}
	return errors.Join(fmt.Errorf("network: %w", nerr), fmt.Errorf("after-setup hook: %w", herr))
}

func (m *Manager) teardownNetwork(ctx context.Context, p *Pod) error {
	if p.Network != NetworkAttached {
		return nil
	}
	if m.Network == nil {
		return fmt.Errorf("pod %s: network attached but no pod network is configured: %w", p.ID, errdefs.ErrFailedPrecondition)
	}
	if err := m.Network.Teardown(ctx, p.cniPod()); err != nil {
		return err
	}
	p.Network = NetworkDetached
	return nil
}

func (m *Manager) writeFiles(_ context.Context, p *Pod, c *Config) error {
	if err := writeFile(p.HostnamePath, []byte(p.Hostname+"\n")); err != nil {
		return err
	}
	resolv, err := ResolvConf(c.DNS, or(m.HostResolvConf, defaultResolvConf))
	if err != nil {
		return err
	}
	if err := writeFile(p.ResolvPath, resolv); err != nil {
		return err
	}
	var hosts []byte
	if p.HostNetwork() {
		if hosts, err = HostNetworkHostsFile(or(m.HostHosts, defaultHosts), c.HostAliases); err != nil {
			return err
		}
	} else {
		hosts = HostsFile(p.Hostname, p.IPs, c.HostAliases)
	}
	return writeFile(p.HostsPath, hosts)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (m *Manager) afterSetup(ctx context.Context, p *Pod, _ *Config) error {
	if m.AfterSetup == nil {
		return nil
	}
	// The hook may record the pause process it started; nothing else it
	// changes on its copy is taken.
	q := clonePod(p)
	if err := m.AfterSetup(ctx, q); err != nil {
		return err
	}
	p.PausePID = q.PausePID
	return nil
}

// hook is a step that runs a hook on a copy of the pod, if it is set.
func (m *Manager) hook(h func() Hook) func(context.Context, *Pod, *Config) error {
	return func(ctx context.Context, p *Pod, _ *Config) error {
		if f := h(); f != nil {
			return f(ctx, clonePod(p))
		}
		return nil
	}
}

func (m *Manager) hookUndo(h func() Hook) func(context.Context, *Pod) error {
	return func(ctx context.Context, p *Pod) error {
		if f := h(); f != nil {
			return f(ctx, clonePod(p))
		}
		return nil
	}
}

func (m *Manager) beforeTeardown(ctx context.Context, p *Pod) error {
	if m.BeforeTeardown == nil {
		return nil
	}
	if err := m.BeforeTeardown(ctx, clonePod(p)); err != nil {
		return fmt.Errorf("before teardown hook: %w", err)
	}
	return nil
}

// Stop does the sandbox part of StopPodSandbox: BeforeTeardown, CNI DEL,
// and the pod becomes NOTREADY; the record and every other resource stay.
// A second Stop succeeds. An unknown id is NotFound, which cri/ answers
// as success.
func (m *Manager) Stop(ctx context.Context, id string) error {
	p, unlock, err := m.getLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := m.beforeTeardown(ctx, p); err != nil {
		return fmt.Errorf("stop pod %s: %w", p.ID, err)
	}
	nerr := m.teardownNetwork(ctx, p)
	p.State = StateNotReady
	if err := errors.Join(nerr, m.Store.Update(p)); err != nil {
		return fmt.Errorf("stop pod %s: %w", p.ID, err)
	}
	return nil
}

// Remove does the sandbox part of RemovePodSandbox: BeforeTeardown, CNI
// DEL if Stop's did not happen or failed, then the shm mount, the pinned
// namespaces, the cgroup, the directory and the record. Every step runs
// even if one before failed; the record is deleted only when all
// succeeded, so a retry finds what is left. An unknown id is NotFound,
// which cri/ answers as success.
func (m *Manager) Remove(ctx context.Context, id string) error {
	p, unlock, err := m.getLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := m.beforeTeardown(ctx, p); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	errs := []error{m.teardownNetwork(ctx, p), unmountShm(p), unpin(p), m.removeCgroup(ctx, p)}
	if err := errors.Join(errs...); err != nil {
		p.State = StateNotReady
		return fmt.Errorf("remove pod %s: %w", p.ID, errors.Join(err, m.Store.Update(p)))
	}
	if err := removeDir(p); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	if err := m.Store.Delete(p.ID); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID, err)
	}
	m.locks.Delete(p.ID)
	return nil
}

// getLocked resolves id (or a unique prefix), takes the pod's lock and
// reads the pod again under it.
func (m *Manager) getLocked(id string) (*Pod, func(), error) {
	p, err := m.Store.Get(id)
	if err != nil {
		return nil, nil, err
	}
	unlock := m.lock(p.ID)
	p, err = m.Store.Get(p.ID)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return p, unlock, nil
}

// Recover brings records in line with the machine after a daemon start: a
// pod still CREATING was cut short, and a READY pod whose pinned
// namespaces are gone (a reboot emptied /run) cannot run containers; both
// become NOTREADY, for the kubelet to stop and remove.
func (m *Manager) Recover() error {
	var errs []error
	for _, p := range m.Store.List(Filter{States: []State{StateCreating, StateReady}}) {
		if p.State == StateReady && pinsIntact(p) {
			continue
		}
		p.State = StateNotReady
		errs = append(errs, m.Store.Update(p))
	}
	return errors.Join(errs...)
}

func pinsIntact(p *Pod) bool {
	for _, ns := range []string{p.NetNS, p.IPCNS, p.UTSNS, p.UserNS} {
		if ns != "" && !nsfs.Pinned(ns) {
			return false
		}
	}
	return true
}

// CgroupsOf adapts a cgroups.Manager to Cgroups: the pod's cgroup is made
// without resources (its containers' cgroups below carry them).
func CgroupsOf(m cgroupFiles) Cgroups {
	return cgroupsAdapter{m}
}

// cgroupFiles is the part of cgroups.Manager the pod's cgroup needs.
type cgroupFiles interface {
	Create(path string, r *cgroups.Resources) error
	Remove(path string) error
	RemoveEmpty(path string) (bool, error)
	Exists(path string) (bool, error)
}

type cgroupsAdapter struct{ m cgroupFiles }

func (a cgroupsAdapter) Create(path string) error { return a.m.Create(path, nil) }
func (a cgroupsAdapter) Remove(path string) error { return a.m.Remove(path) }
func (a cgroupsAdapter) RemoveEmpty(path string) (bool, error) {
	return a.m.RemoveEmpty(path)
}

func (a cgroupsAdapter) Exists(path string) bool {
	// A path Exists refuses is taken as present: the walk up stops there
	// and Create reports what is wrong with it.
	ok, err := a.m.Exists(path)
	return ok || err != nil
}

// applySysctls writes the pod's sysctls into its pinned namespaces at Run,
// where a key this kernel lacks or a value it refuses is InvalidArgument
// naming it, instead of failing every container's start later. Containers
// write them again (the spec carries them): harmless, and it keeps a pod
// made by an older crib right.
func applySysctls(p *Pod) error {
	byNS := map[sysctl.Namespace]map[string]string{}
	for k, v := range p.Sysctls {
		ns := sysctl.NamespaceOf(k)
		if byNS[ns] == nil {
			byNS[ns] = map[string]string{}
		}
		byNS[ns][k] = v
	}
	for ns, kv := range byNS {
		var pin string
		var kind nsfs.Kind
		switch ns {
		case sysctl.Net:
			pin, kind = p.NetNS, nsfs.Net
		case sysctl.IPC:
			pin, kind = p.IPCNS, nsfs.IPC
		default: // validate refused these; never write the host's
			return invalidf("sysctls %v are not namespaced", slices.Sorted(maps.Keys(kv)))
		}
		if pin == "" { // validate refused these already; never the host's
			return invalidf("sysctls %v: the pod has no %s namespace of its own", slices.Sorted(maps.Keys(kv)), kind)
		}
		// /proc/sys/net and the IPC keys resolve against the namespaces
		// of the thread that opens them.
		if err := nsfs.Do(pin, kind, func() error { return writeSysctls(kv) }); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctls(kv map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		p, err := sysctl.Path(k)
		if err != nil {
			return invalidf("sysctl %q: %v", k, err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|unix.O_NOFOLLOW, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return invalidf("sysctl %q: this kernel has no such key", k)
		}
		if err != nil {
			return fmt.Errorf("sysctl %q: %w", k, err)
		}
		_, err = f.WriteString(kv[k])
		f.Close()
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
			return invalidf("sysctl %q: the kernel refused value %q", k, kv[k])
		}
		if err != nil {
			return fmt.Errorf("sysctl %q = %q: %w", k, kv[k], err)
		}
	}
	return nil
}
