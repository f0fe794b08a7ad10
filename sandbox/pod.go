package sandbox

import (
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/sandbox/cni"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// State is a pod's lifecycle state. cri/ reports Creating as NOTREADY.
type State uint8

// The states. A pod is Creating from the first durable record of RunPodSandbox
// until every step is done, so a daemon killed halfway leaves a record that
// Stop and Remove can clean up after.
const (
	StateCreating State = iota + 1
	StateReady
	StateNotReady
)

var stateNames = map[State]string{
	StateCreating: "CREATING",
	StateReady:    "READY",
	StateNotReady: "NOTREADY",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// transitions lists the states each state may move to. Creating →
// NotReady is a run cut short (a crash, or Stop during Run's retries).
var transitions = map[State][]State{
	StateCreating: {StateReady, StateNotReady},
	StateReady:    {StateNotReady},
	StateNotReady: {},
}

// CanTransition reports whether a pod in state s may move to next (a state
// may always stay as it is).
func (s State) CanTransition(next State) bool {
	if s == next {
		return true
	}
	for _, t := range transitions[s] {
		if t == next {
			return true
		}
	}
	return false
}

// NetworkState says what CNI has done for the pod.
type NetworkState uint8

// The network states.
const (
	// NetworkHost: the pod uses the host's network; CNI is never called.
	NetworkHost NetworkState = iota + 1
	// NetworkAttached: ADD ran or may have run, so DEL is owed. Set before
	// the ADD, so a crash in between still leads to a DEL (which is
	// idempotent by the CNI spec).
	NetworkAttached
	// NetworkDetached: DEL succeeded.
	NetworkDetached
)

func (n NetworkState) String() string {
	switch n {
	case NetworkHost:
		return "host"
	case NetworkAttached:
		return "attached"
	case NetworkDetached:
		return "detached"
	}
	return fmt.Sprintf("NetworkState(%d)", uint8(n))
}

// Pod is a pod sandbox as crib knows it: its identity, and the facts
// containers need (namespace paths, cgroup, files), as plain values. The
// Store persists it as its own versioned document (recordV2).
type Pod struct {
	ID        string // 64 hex characters
	Name      string
	Namespace string
	UID       string
	Attempt   uint32
	// Labels and Annotations are kept exactly as given.
	Labels      map[string]string
	Annotations map[string]string
	CreatedAt   time.Time
	State       State
	Network     NetworkState

	// Dir is the pod's directory (namespace pins, shm, hosts, resolv.conf,
	// hostname).
	Dir string
	// Pinned namespaces; "" means the host's (containers join nothing).
	NetNS, IPCNS, UTSNS string
	// CgroupParent is the parent as given, where the containers' cgroups
	// go; Cgroup the pod's own cgroup under it, where its pause process
	// runs ("" when the pod has none: no parent, or no pause process).
	CgroupParent, Cgroup string

	// IPs are the pod's addresses, IPv4 first; empty on the host network.
	IPs      []string
	Hostname string
	// Paths of the files containers bind-mount; ShmPath is "" with the
	// host's IPC namespace (containers use the host's /dev/shm).
	HostnamePath, ResolvPath, HostsPath, ShmPath string

	RuntimeHandler string
	LogDir         string
	// PortMappings and Bandwidth are kept for the DEL, which must see
	// what the ADD saw.
	PortMappings []cni.PortMapping
	Bandwidth    *cni.Bandwidth
	// Sysctls are the validated namespaced sysctls, names dotted.
	Sysctls map[string]string
	// SharePID says the pod's containers share one pid namespace, whose
	// pid 1 is the pause process PausePID (set by the AfterSetup hook).
	SharePID bool
	PausePID int
	// CreatedCgroups are the ancestors of the pod's cgroup that crib made
	// (they did not exist), deepest first; the pod's removal takes them.
	CreatedCgroups []string

	// Privileged says the pod may hold privileged containers, and HostPID
	// that its containers use the host's pid namespace. They are what the
	// pod decided at RunPodSandbox; a CreateContainer request carries its
	// own copy of the pod's config, which the client may have changed, so
	// cri/ reads these instead.
	Privileged, HostPID bool
	// Seccomp is the pod's seccomp choice (Config.Seccomp); "" in records
	// made before crib kept it, when no pod was confined.
	Seccomp string
	// SecurityUnrecorded marks a pod created by a version whose record
	// (version 1) kept neither Privileged nor HostPID: both are false here
	// and cri/ takes them from each request, as that version did, so the
	// pod's privileged or host-pid containers keep working after the
	// upgrade.
	SecurityUnrecorded bool
	// SELinux is the pod's SELinux options as RunPodSandbox got them.
	SELinux SELinuxOptions
	// UserNS is the pinned user namespace of a hostUsers: false pod ("":
	// the host's), which owns its net, ipc and uts namespaces and the pid
	// namespace of its pause; UserMaps are its mappings.
	UserNS   string
	UserMaps nsfs.UserMaps
	// Overhead and Resources are the pod's resources as the kubelet gave
	// them at RunPodSandbox or since (UpdateResources), nil if none: crib
	// writes no cgroup from them, NRI plugins read them. Replaced whole,
	// never changed in place.
	Overhead, Resources *specs.LinuxResources
}

// SELinuxOptions are the parts of an SELinux label a pod gives; empty
// parts are the runtime's defaults.
type SELinuxOptions struct {
	User  string `json:"user,omitempty"`
	Role  string `json:"role,omitempty"`
	Type  string `json:"type,omitempty"`
	Level string `json:"level,omitempty"`
}

// HostNetwork reports whether the pod uses the host's network namespace.
func (p *Pod) HostNetwork() bool { return p.Network == NetworkHost }

func (p *Pod) cniPod() cni.Pod {
	return cni.Pod{
		ID: p.ID, Name: p.Name, Namespace: p.Namespace, UID: p.UID, NetNS: p.NetNS,
		PortMappings: p.PortMappings, Bandwidth: p.Bandwidth, Annotations: p.Annotations,
	}
}
