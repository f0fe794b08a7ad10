package cni

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// IfName is the pod's interface, as the kubelet's network plugins expect it.
const IfName = "eth0"

// Capability names as the CNI conventions (CONVENTIONS.md) and the
// standard plugins (portmap, bandwidth) declare them in "capabilities".
const (
	capPortMappings   = "portMappings"
	capBandwidth      = "bandwidth"
	capPodAnnotations = "io.kubernetes.cri.pod-annotations"
)

// cleanupTimeout bounds the DEL that undoes a failed ADD, which runs even
// when the caller's context is already cancelled.
const cleanupTimeout = 30 * time.Second

// PortMapping is one hostPort, in the JSON form of the portMappings
// capability argument. Protocol is lower case ("tcp", "udp", "sctp").
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth limits the pod's traffic, in the JSON form of the bandwidth
// capability argument: rates in bits per second, bursts in bits. Zero
// leaves a direction unlimited.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate,omitempty"`
	IngressBurst uint64 `json:"ingressBurst,omitempty"`
	EgressRate   uint64 `json:"egressRate,omitempty"`
	EgressBurst  uint64 `json:"egressBurst,omitempty"`
}

// Pod is what ADD and DEL need to know about a pod. Give DEL the same
// values as ADD: plugins such as portmap find their rules by them.
type Pod struct {
	ID        string // the pod sandbox id: CNI's container id
	Name      string
	Namespace string
	UID       string
	// NetNS is the pod's pinned network namespace. For DEL a path that is
	// no longer a namespace is passed on as empty, which the CNI spec
	// allows, so plugins still release what they hold (IPAM leases).
	NetNS        string
	PortMappings []PortMapping
	Bandwidth    *Bandwidth
	// Annotations go to plugins that declare the
	// io.kubernetes.cri.pod-annotations capability, as containerd does.
	Annotations map[string]string
}

// Interface is one interface a plugin reports.
type Interface struct {
	Name    string
	MAC     string
	Sandbox string // the namespace path; empty for host-side interfaces
}

// Result is what ADD gave the pod.
type Result struct {
	// IPs are the addresses on the pod's eth0, IPv4 first, in the order
	// the plugins gave them within a family.
	IPs        []netip.Addr
	Interfaces []Interface
}

// Setup runs ADD for the pod with the first configuration in ConfDir. A
// failed ADD is followed by a DEL, so a plugin that failed halfway (after
// bridge made the veth, say) leaves nothing behind; the error carries the
// plugin's message.
func (n Network) Setup(ctx context.Context, pod Pod) (_ Result, retErr error) {
	list, err := n.Load()
	if err != nil {
		return Result{}, fmt.Errorf("set up network of pod %s: %w: %w", pod.ID, err, errdefs.ErrFailedPrecondition)
	}
	cfg := n.config()
	rt := runtimeConf(pod, pod.NetNS)
	start := time.Now()
	res, err := cfg.AddNetworkList(ctx, list, rt)
	n.observe(ctx, "ADD", pod.ID, start, err)
	if err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		retErr = fmt.Errorf("set up network %q of pod %s: %w", list.Name, pod.ID, err)
		start := time.Now()
		derr := cfg.DelNetworkList(dctx, list, rt)
		n.observe(dctx, "DEL", pod.ID, start, derr)
		if derr != nil {
			retErr = errors.Join(retErr, fmt.Errorf("undo network %q of pod %s: %w", list.Name, pod.ID, derr))
		}
		return Result{}, retErr
	}
	r, err := convertResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("set up network %q of pod %s: %w", list.Name, pod.ID, err)
	}
	return r, nil
}

// Teardown runs DEL for the pod. It tolerates a network namespace that is
// gone (DEL then runs without one) and a second call (DEL is idempotent by
// the CNI spec).
func (n Network) Teardown(ctx context.Context, pod Pod) error {
	list, err := n.Load()
	if err != nil {
		return fmt.Errorf("tear down network of pod %s: %w: %w", pod.ID, err, errdefs.ErrFailedPrecondition)
	}
	netns := pod.NetNS
	if !nsfs.Pinned(netns) {
		netns = ""
	}
	start := time.Now()
	err = n.config().DelNetworkList(ctx, list, runtimeConf(pod, netns))
	n.observe(ctx, "DEL", pod.ID, start, err)
	if err != nil {
		return fmt.Errorf("tear down network %q of pod %s: %w", list.Name, pod.ID, err)
	}
	return nil
}

// config returns libcni's handle. Its cache (the ADD results and configs
// DEL reuses) lives under CacheDir, crib's state, not /var/lib/cni, so it
// goes away with crib's state.
func (n Network) config() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(n.BinDirs, n.CacheDir, nil)
}

func runtimeConf(pod Pod, netns string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pod.ID,
		NetNS:       netns,
		IfName:      IfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ID},
			{"K8S_POD_UID", pod.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	// libcni passes each capability argument only to plugins that declare
	// the capability, in their "runtimeConfig".
	if len(pod.PortMappings) > 0 {
		rt.CapabilityArgs[capPortMappings] = pod.PortMappings
	}
	if pod.Bandwidth != nil {
		rt.CapabilityArgs[capBandwidth] = pod.Bandwidth
	}
	if len(pod.Annotations) > 0 {
		rt.CapabilityArgs[capPodAnnotations] = pod.Annotations
	}
	return rt
}

// convertResult picks the pod's addresses out of a plugin chain's result:
// those on the sandbox's eth0, or on no interface in particular.
func convertResult(res types.Result) (Result, error) {
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("convert result: %w", err)
	}
	var out Result
	for _, i := range r100.Interfaces {
		out.Interfaces = append(out.Interfaces, Interface{Name: i.Name, MAC: i.Mac, Sandbox: i.Sandbox})
	}
	for _, ipc := range r100.IPs {
		if ipc.Interface != nil {
			idx := *ipc.Interface
			if idx < 0 || idx >= len(r100.Interfaces) {
				continue
			}
			if i := r100.Interfaces[idx]; i.Name != IfName || i.Sandbox == "" {
				continue
			}
		}
		a, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			continue
		}
		out.IPs = append(out.IPs, a.Unmap())
	}
	slices.SortStableFunc(out.IPs, func(a, b netip.Addr) int {
		switch {
		case a.Is4() == b.Is4():
			return 0
		case a.Is4():
			return -1
		}
		return 1
	})
	return out, nil
}
