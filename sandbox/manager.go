package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/internal/sysctl"
	"github.com/crib-runtime/crib/sandbox/cni"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// Cgroups makes and removes the pod's cgroup. cmd/crib adapts the
// cgroups.Manager to it (CgroupsOf).
type Cgroups interface {
	// Create makes path and any missing ancestors.
	Create(path string) error
	// Remove kills what is left in path and removes it; a missing path is
	// not an error.
	Remove(path string) error
	// RemoveEmpty removes path if nothing uses it, killing nothing, and
	// reports whether it is gone (cgroups.Manager.RemoveEmpty).
	RemoveEmpty(path string) (bool, error)
	// Exists reports whether path is a cgroup.
	Exists(path string) bool
}

// Units hands the pod's cgroups to the node's service manager under the
// systemd cgroup driver (cgroups/systemd.Units).
type Units interface {
	// Adopt makes cgroup, where pid was born, a unit holding it.
	Adopt(ctx context.Context, cgroup string, pid int, r *cgroups.Resources) error
	// Release stops and forgets the unit of cgroup; none is no error.
	Release(ctx context.Context, cgroup string) error
	// MayCreate says whether crib may make the missing cgroup, a pod's
	// parent, and so stop its unit with the pod: nil, or an error
	// (FailedPrecondition) saying who should make it.
	MayCreate(cgroup string) error
}

// Network attaches pods to the pod network and detaches them: cni.Network.
type Network interface {
	Setup(ctx context.Context, pod cni.Pod) (cni.Result, error)
	Teardown(ctx context.Context, pod cni.Pod) error
}

// Hook is a step another package adds to a pod's lifecycle (the pod's shim
// and pause process, wired by cri/). Hooks get a copy of the pod.
type Hook func(ctx context.Context, pod *Pod) error

// Manager does the sandbox steps of RunPodSandbox, StopPodSandbox and
// RemovePodSandbox. Run rolls back every step on failure; Stop and Remove
// are idempotent and work on partial pods (a run cut short by a crash).
type Manager struct {
	Store *Store
	// StateDir holds one directory per pod (StateDir/<id>): namespace
	// pins, the shm mount and the pod's files. It belongs under /run,
	// whose loss at reboot matches that of the namespaces.
	StateDir string
	// Cgroups makes the pod's cgroup; nil means pods get none.
	Cgroups Cgroups
	// Units, under the systemd cgroup driver, makes the pause's cgroup a
	// scope unit and stops the units of what Remove removes; nil under
	// cgroupfs.
	Units Units
	// Network is the CNI network; nil refuses pods not on the host network.
	Network Network
	// HostResolvConf and HostHosts are the node's files that pods copy
	// (DNS default; hosts of host-network pods). Empty means /etc/...
	HostResolvConf, HostHosts string
	// AfterSetup runs in Run once the pod's namespaces, cgroup and
	// /dev/shm exist, at the same time as CNI ADD (start the pod's shim
	// and pause here; the network may not be there yet). If it fails it
	// must undo its own work; Run undoes the rest.
	AfterSetup Hook
	// BeforeTeardown runs first in Stop and Remove (and in Run's rollback
	// after AfterSetup succeeded): stop what AfterSetup started. It must be
	// idempotent and must not fail for a pod AfterSetup never saw.
	BeforeTeardown Hook
	// BeforeReady runs last in Run, before the pod is READY (NRI's
	// RunPodSandbox: plugins see the finished pod and may refuse it). If
	// it fails it must undo its own work; AfterUnready undoes it when the
	// last step fails.
	BeforeReady, AfterUnready Hook
	// NsHolder is the command PinUser runs to make a pod's user namespace
	// (crib's own binary, "userns-hold"); nil refuses such pods.
	NsHolder []string

	// locks serialises operations on one pod id.
	locks sync.Map // id → *sync.Mutex
	// failAfter, set by tests only, fails Run after the named step.
	failAfter func(step string) error
}

// Config is a pod as cri/ converts it from the CRI's PodSandboxConfig.
type Config struct {
	ID                   string // chosen by cri/, 64 hex characters
	Name, Namespace, UID string
	Attempt              uint32
	Labels, Annotations  map[string]string
	// Hostname "" means the node's.
	Hostname    string
	DNS         DNSConfig
	HostAliases []HostAlias
	// HostNetwork also implies the host's UTS namespace, as the kubelet
	// has it; HostIPC the host's /dev/shm.
	HostNetwork, HostIPC bool
	PortMappings         []cni.PortMapping
	Bandwidth            *cni.Bandwidth
	// CgroupParent is the absolute, clean cgroup path the pod's cgroup
	// goes under (cri/ resolves it with cgroups.Paths.Pod); "" means
	// no pod cgroup.
	CgroupParent string
	// Cgroup is the pod's own cgroup in CgroupParent, where its pause
	// runs (cgroups.Paths.Leaf: a scope under the systemd driver); ""
	// means <CgroupParent>/<ID>.
	Cgroup string
	// ShmSize is the size of the pod's /dev/shm in bytes; 0 means 64 MiB.
	ShmSize        int64
	Sysctls        map[string]string
	RuntimeHandler string
	LogDir         string
	// SharePID gives the pod one pid namespace for all its containers;
	// HostPID gives them the host's.
	SharePID, HostPID bool
	// Privileged allows the pod privileged containers.
	Privileged bool
	// Seccomp is the pod's seccomp choice for containers that make none,
	// in the CRI's path form ("", "unconfined", "runtime/default",
	// "localhost/<path>"); crib keeps it, cri/spec interprets it.
	Seccomp string
	// SELinux is the pod's SELinux options, the default of its
	// containers' labels; zero when the pod asks for none.
	SELinux SELinuxOptions
	// UserMaps, when set, give the pod a user namespace of its own with
	// these mappings (hostUsers: false); zero means the host's.
	UserMaps *nsfs.UserMaps
	// Overhead and Resources are kept for NRI plugins (Pod.Resources).
	Overhead, Resources *specs.LinuxResources
}

const (
	defaultResolvConf = "/etc/resolv.conf"
	defaultHosts      = "/etc/hosts"
	undoTimeout       = 2 * time.Minute
)

func (m *Manager) lock(id string) func() {
	mu, _ := m.locks.LoadOrStore(id, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// validate checks everything about c that can be checked before any step,
// and returns the sysctls normalised.
func (c *Config) validate() (map[string]string, error) {
	if !validID(c.ID) {
		return nil, invalidf("pod id %q: want 64 lower-case hex characters", c.ID)
	}
	if c.Name == "" || c.Namespace == "" || c.UID == "" {
		return nil, invalidf("pod %s: name, namespace and uid are required", c.ID)
	}
	if c.Hostname != "" {
		if err := ValidateHostname(c.Hostname); err != nil {
			return nil, err
		}
	}
	if err := ValidateDNS(c.DNS); err != nil {
		return nil, err
	}
	if err := ValidateHostAliases(c.HostAliases); err != nil {
		return nil, err
	}
	if c.SharePID && c.HostPID {
		return nil, invalidf("pod %s: a pid namespace cannot be both the pod's and the host's", c.ID)
	}
	if err := validateUserMaps(c); err != nil {
		return nil, err
	}
	if c.ShmSize < 0 {
		return nil, invalidf("shm size %d: must be positive", c.ShmSize)
	}
	if c.LogDir != "" && (!filepath.IsAbs(c.LogDir) || filepath.Clean(c.LogDir) != c.LogDir) {
		return nil, invalidf("log directory %q: must be an absolute, clean path", c.LogDir)
	}
	if c.CgroupParent != "" && (!path.IsAbs(c.CgroupParent) || path.Clean(c.CgroupParent) != c.CgroupParent) {
		return nil, invalidf("cgroup parent %q: must be an absolute, clean path", c.CgroupParent)
	}
	if c.Cgroup != "" && (c.CgroupParent == "" || path.Dir(c.Cgroup) != c.CgroupParent || path.Clean(c.Cgroup) != c.Cgroup) {
		return nil, invalidf("pod cgroup %q: must be a clean path directly in the cgroup parent %q", c.Cgroup, c.CgroupParent)
	}
	return sysctl.Validate(c.Sysctls, c.HostNetwork, c.HostIPC)
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// newPod lays out the pod: every path is fixed before the first step, so
// the first record already names everything Remove may have to undo.
func (m *Manager) newPod(c *Config, sysctls map[string]string) (*Pod, error) {
	hostname := c.Hostname
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("pod %s: node hostname: %w", c.ID, err)
		}
		hostname = h
	}
	dir := filepath.Join(m.StateDir, c.ID)
	p := &Pod{
		ID: c.ID, Name: c.Name, Namespace: c.Namespace, UID: c.UID, Attempt: c.Attempt,
		Labels: c.Labels, Annotations: c.Annotations, CreatedAt: time.Now().UTC(),
		State: StateCreating, Network: NetworkAttached, Dir: dir, CgroupParent: c.CgroupParent,
		Hostname: hostname, HostnamePath: filepath.Join(dir, "hostname"),
		ResolvPath: filepath.Join(dir, "resolv.conf"), HostsPath: filepath.Join(dir, "hosts"),
		RuntimeHandler: c.RuntimeHandler, LogDir: c.LogDir,
		PortMappings: c.PortMappings, Bandwidth: c.Bandwidth, Sysctls: sysctls, SharePID: c.SharePID,
		HostPID: c.HostPID, Privileged: c.Privileged, Seccomp: c.Seccomp, SELinux: c.SELinux,
		Overhead: c.Overhead, Resources: c.Resources,
	}
	if c.HostNetwork {
		p.Network = NetworkHost
	} else {
		p.NetNS = filepath.Join(dir, "ns", string(nsfs.Net))
		p.UTSNS = filepath.Join(dir, "ns", string(nsfs.UTS))
	}
	if !c.HostIPC {
		p.IPCNS = filepath.Join(dir, "ns", string(nsfs.IPC))
		p.ShmPath = filepath.Join(dir, "shm")
	}
	if c.CgroupParent != "" && c.SharePID {
		// Only the pause process lives in the pod's own cgroup; the
		// containers' cgroups are <parent>/<container id>, as containerd
		// and CRI-O place them. A pod without a pause gets none: on a v1
		// host it would be an empty directory in every hierarchy (a
		// memory cgroup costs per-CPU state) for the pod's life.
		p.Cgroup = c.Cgroup
		if p.Cgroup == "" {
			p.Cgroup = path.Join(c.CgroupParent, c.ID)
		}
	}
	if c.UserMaps != nil {
		p.UserNS = filepath.Join(dir, "ns", string(nsfs.User))
		p.UserMaps = *c.UserMaps
	}
	return p, nil
}

// UpdateResources records a pod's new overhead and resources (CRI
// UpdatePodSandboxResources). Nothing is written to cgroups: the kubelet
// sizes the pod's cgroup itself.
func (m *Manager) UpdateResources(_ context.Context, id string, overhead, resources *specs.LinuxResources) error {
	p, unlock, err := m.getLocked(id)
	if err != nil {
		return err
	}
	defer unlock()
	p.Overhead, p.Resources = overhead, resources
	if err := m.Store.Update(p); err != nil {
		return fmt.Errorf("update pod %s resources: %w", p.ID, err)
	}
	return nil
}

// Get returns the pod with id, or the one pod whose id starts with it.
func (m *Manager) Get(id string) (*Pod, error) { return m.Store.Get(id) }

// List returns the pods f selects.
func (m *Manager) List(f Filter) []*Pod { return m.Store.List(f) }

// errRolledBack marks an undo step's failure in Run's error.
var errRolledBack = errors.New("roll back")

// undo runs cleanups in reverse order on a context that outlives the
// caller's cancellation, and joins their errors to err.
func undo(ctx context.Context, err error, steps []func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	errs := []error{err}
	for i := len(steps) - 1; i >= 0; i-- {
		if uerr := steps[i](ctx); uerr != nil {
			errs = append(errs, fmt.Errorf("%w: %w", errRolledBack, uerr))
		}
	}
	return errors.Join(errs...)
}

// removeDir removes the pod's files and then its directory; anything
// unexpected in it (a mount still there, say) makes the last step fail
// rather than be deleted with it. Temp files of atomic writes are
// expected: pods made by earlier versions wrote their files through one,
// and a daemon killed in the middle of it left its temp file. They are
// looked for only when the directory is not empty, so that a removal
// lists nothing.
func removeDir(p *Pod) error {
	var errs []error
	for _, f := range []string{p.HostnamePath, p.ResolvPath, p.HostsPath, p.ShmPath, filepath.Join(p.Dir, "ns")} {
		if f == "" {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	err := os.Remove(p.Dir)
	if errors.Is(err, unix.ENOTEMPTY) {
		if terr := statefile.RemoveTemps(p.Dir); terr != nil {
			errs = append(errs, terr)
		}
		err = os.Remove(p.Dir)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s directory: %w", p.ID, err)
	}
	return nil
}
