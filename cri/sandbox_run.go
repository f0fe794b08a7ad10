package cri

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
	"github.com/crib-runtime/crib/sandbox/cni"
)

// defaultShmSize is a pod's /dev/shm: the CRI carries no size, and 64 MiB is
// what Docker and containerd give.
const defaultShmSize = 64 << 20

// RunPodSandbox creates a pod: pinned namespaces, cgroup, /dev/shm, network,
// files, its shim (and pause process when the pod shares a pid namespace).
// On failure nothing is left behind.
func (s *Server) RunPodSandbox(ctx context.Context, req *criapi.RunPodSandboxRequest) (*criapi.RunPodSandboxResponse, error) {
	if h := req.GetRuntimeHandler(); h != "" && !slices.Contains(s.opts.RuntimeHandlers, h) {
		return nil, fmt.Errorf("run pod sandbox: runtime handler %q is not configured (runtime_handlers: %q): %w", h, s.opts.RuntimeHandlers, errdefs.ErrNotFound)
	}
	// Before anything is made: a profile or label this host cannot apply
	// is the pod's to know now, not at its first container.
	if err := spec.PodLSM(req.GetConfig().GetLinux().GetSecurityContext(), s.lsm); err != nil {
		return nil, fmt.Errorf("run pod sandbox: %w", err)
	}
	c, err := toSandboxConfig(req.GetConfig(), s.cgroupPaths())
	if err != nil {
		return nil, err
	}
	c.RuntimeHandler = req.GetRuntimeHandler()
	if c.UserMaps != nil && !s.opts.UserNamespaces {
		return nil, fmt.Errorf("run pod sandbox: user namespaces (hostUsers: false): this host cannot make them with idmapped mounts (see the daemon's start-up log): %w", errdefs.ErrFailedPrecondition)
	}
	// The id is new, so nothing waits here; a Stop or Remove that learns
	// it (ListPodSandbox shows the CREATING pod) waits for the run.
	unlock, err := s.podLocks.lock(ctx, c.ID, true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// From NRI's RunPodSandbox (NRIRunPod, the pod's last step) until
	// the pod is READY: a plugin synchronised in between would see
	// neither. Not before: a plugin registering meanwhile waits for this
	// hold, and every later pod and container with it, so not through
	// CNI.
	hold := &syncHold{}
	defer hold.release()
	pod, err := s.sandboxes.Run(withSyncHold(ctx, hold), c)
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Started pod sandbox", "podSandboxID", pod.ID, "pod", pod.Namespace+"/"+pod.Name, "ips", pod.IPs)
	return &criapi.RunPodSandboxResponse{PodSandboxId: pod.ID}, nil
}

func toSandboxConfig(cfg *criapi.PodSandboxConfig, paths cgroups.Paths) (sandbox.Config, error) {
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: metadata name, namespace and uid are required: %w", errdefs.ErrInvalidArgument)
	}
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetNetwork() == criapi.NamespaceMode_TARGET || ns.GetIpc() == criapi.NamespaceMode_TARGET {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: TARGET mode is for the pid namespace only: %w", errdefs.ErrInvalidArgument)
	}
	userMaps, err := userMapsOf(ns.GetUsernsOptions())
	if err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: %w", err)
	}
	psc := cfg.GetLinux().GetSecurityContext()
	if err := checkPodUser(psc); err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: %w", err)
	}
	seccomp := spec.SeccompRef(psc.GetSeccomp(), psc.GetSeccompProfilePath())
	if err := spec.CheckSeccompRef(seccomp); err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: %w", err)
	}
	// A pod without a parent (crictl sends none) gets a level of its own
	// under crib's root, pod<id> (a slice, crib-pod<id>.slice, under
	// systemd), as the kubelet gives each pod pod<uid>: its containers
	// and nothing else are below it, so the pod's stats, metrics and
	// teardown work as under the kubelet.
	id := runtime.NewID()
	parent, err := paths.Pod(cfg.GetLinux().GetCgroupParent(), id)
	if err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: %w", err)
	}
	podCgroup, err := paths.Leaf(parent, id)
	if err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: %w", err)
	}
	overhead, err := optionalResources(cfg.GetLinux().GetOverhead())
	if err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: overhead: %w", err)
	}
	resources, err := optionalResources(cfg.GetLinux().GetResources())
	if err != nil {
		return sandbox.Config{}, fmt.Errorf("run pod sandbox: resources: %w", err)
	}
	c := sandbox.Config{
		ID: id, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), Attempt: md.GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), Hostname: cfg.GetHostname(),
		DNS:          sandbox.DNSConfig{Servers: cfg.GetDnsConfig().GetServers(), Searches: cfg.GetDnsConfig().GetSearches(), Options: cfg.GetDnsConfig().GetOptions()},
		HostNetwork:  ns.GetNetwork() == criapi.NamespaceMode_NODE,
		HostIPC:      ns.GetIpc() == criapi.NamespaceMode_NODE,
		SharePID:     ns.GetPid() == criapi.NamespaceMode_POD,
		HostPID:      ns.GetPid() == criapi.NamespaceMode_NODE,
		Privileged:   cfg.GetLinux().GetSecurityContext().GetPrivileged(),
		Seccomp:      seccomp,
		CgroupParent: parent, Cgroup: podCgroup, ShmSize: defaultShmSize,
		Sysctls: cfg.GetLinux().GetSysctls(), LogDir: cfg.GetLogDirectory(),
		UserMaps: userMaps, Overhead: overhead, Resources: resources,
	}
	if o := cfg.GetLinux().GetSecurityContext().GetSelinuxOptions(); o != nil {
		c.SELinux = sandbox.SELinuxOptions{User: o.GetUser(), Role: o.GetRole(), Type: o.GetType(), Level: o.GetLevel()}
	}
	for _, pm := range cfg.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue // no hostPort: nothing for portmap to do
		}
		c.PortMappings = append(c.PortMappings, cni.PortMapping{HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(),
			Protocol: strings.ToLower(pm.GetProtocol().String()), HostIP: pm.GetHostIp()})
	}
	return c, nil
}
