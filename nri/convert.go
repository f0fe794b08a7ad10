package nri

import (
	"maps"
	"strings"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Pod is what plugins learn of a pod, as plain values.
type Pod struct {
	ID, Name, UID, Namespace string
	Labels, Annotations      map[string]string
	RuntimeHandler           string
	// CgroupParent is the resolved parent of the pod's containers'
	// cgroups; Cgroup the pod's own cgroup ("" when it has none).
	CgroupParent, Cgroup string
	// Namespaces are the paths the pod's containers join, by OCI type
	// ("network", "ipc", "uts", "pid", "user"); the host's are absent.
	Namespaces map[string]string
	// Pid is the pod's pause process, 0 when it has none.
	Pid int
	// IPs are the pod's addresses, IPv4 first.
	IPs []string
	// Overhead and Resources are the pod's as the kubelet gave them
	// (PodSandboxConfig.linux.overhead and .resources), nil if none.
	Overhead, Resources *specs.LinuxResources
}

// Status is a container's state as plugins see it.
type Status uint8

// The statuses.
const (
	StatusUnknown Status = iota
	StatusCreated
	StatusRunning
	StatusStopped
)

func (s Status) String() string {
	switch s {
	case StatusCreated:
		return "CREATED"
	case StatusRunning:
		return "RUNNING"
	case StatusStopped:
		return "STOPPED"
	}
	return "UNKNOWN"
}

// Container is what plugins learn of a container, as plain values. Most of
// it is its OCI spec.
type Container struct {
	ID, PodID, Name     string
	Status              Status
	Labels, Annotations map[string]string
	// Spec is the container's OCI spec; CreateContainer adjusts it in place.
	Spec                             *specs.Spec
	Pid                              int
	CreatedAt, StartedAt, FinishedAt time.Time
	ExitCode                         int32
	Reason, Message                  string
	// CDIDevices are the CDI devices the container asked for, by name.
	CDIDevices []string
	// Seccomp is the CRI's seccomp choice in its path form ("",
	// "unconfined", "runtime/default", "localhost/<path>").
	Seccomp string
	// Image is the image as shown, RepoDigest its name by digest, ImageID
	// its ID.
	Image, RepoDigest, ImageID string
}

// Info builds the pod and container of an event. It is called only when a
// plugin will receive the event, so that nothing is decoded for nobody.
type Info func() (Pod, Container, error)

func toAPIPod(p Pod) *api.PodSandbox {
	out := &api.PodSandbox{
		Id: p.ID, Name: p.Name, Uid: p.UID, Namespace: p.Namespace,
		Labels: maps.Clone(p.Labels), Annotations: maps.Clone(p.Annotations), RuntimeHandler: p.RuntimeHandler,
		Pid: uint32(p.Pid), Ips: p.IPs,
		Linux: &api.LinuxPodSandbox{
			PodOverhead:  api.FromOCILinuxResources(p.Overhead, nil),
			PodResources: api.FromOCILinuxResources(p.Resources, nil),
			CgroupParent: p.CgroupParent, CgroupsPath: p.Cgroup,
			Resources: api.FromOCILinuxResources(p.Resources, nil),
		},
	}
	for _, t := range []string{"network", "ipc", "uts", "pid", "user"} {
		if path, ok := p.Namespaces[t]; ok {
			out.Linux.Namespaces = append(out.Linux.Namespaces, &api.LinuxNamespace{Type: t, Path: path})
		}
	}
	return out
}

var apiStates = map[Status]api.ContainerState{
	StatusCreated: api.ContainerState_CONTAINER_CREATED,
	StatusRunning: api.ContainerState_CONTAINER_RUNNING,
	StatusStopped: api.ContainerState_CONTAINER_STOPPED,
}

func toAPIContainer(c Container) *api.Container {
	out := &api.Container{
		Id: c.ID, PodSandboxId: c.PodID, Name: c.Name, State: apiStates[c.Status],
		Labels: maps.Clone(c.Labels), Annotations: maps.Clone(c.Annotations),
		Pid: uint32(c.Pid), CreatedAt: unixNano(c.CreatedAt), StartedAt: unixNano(c.StartedAt), FinishedAt: unixNano(c.FinishedAt),
		ExitCode: c.ExitCode, StatusReason: c.Reason, StatusMessage: c.Message,
		Image: &api.Image{Name: c.Image, Digest: c.RepoDigest, ConfigDigest: c.ImageID},
	}
	for _, d := range c.CDIDevices {
		out.CDIDevices = append(out.CDIDevices, &api.CDIDevice{Name: d})
	}
	s := c.Spec
	if s == nil {
		return out
	}
	// What the runtime applies: the spec's annotations over the config's.
	for k, v := range s.Annotations {
		if out.Annotations == nil {
			out.Annotations = map[string]string{}
		}
		out.Annotations[k] = v
	}
	out.Mounts = api.FromOCIMounts(s.Mounts)
	out.Hooks = api.FromOCIHooks(s.Hooks)
	if p := s.Process; p != nil {
		out.Args, out.Env = p.Args, p.Env
		for _, r := range p.Rlimits {
			out.Rlimits = append(out.Rlimits, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
		out.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: p.User.AdditionalGids}
	}
	if l := s.Linux; l != nil {
		out.Linux = &api.LinuxContainer{
			Namespaces: api.FromOCILinuxNamespaces(l.Namespaces), Devices: api.FromOCILinuxDevices(l.Devices),
			Resources: api.FromOCILinuxResources(l.Resources, s.Annotations), CgroupsPath: l.CgroupsPath,
			SeccompProfile: seccompProfile(c.Seccomp),
			Sysctl:         maps.Clone(l.Sysctl), NetDevices: api.FromOCILinuxNetDevices(l.NetDevices),
		}
		if l.Seccomp != nil { // FromOCILinuxSeccomp takes no nil
			out.Linux.SeccompPolicy = api.FromOCILinuxSeccomp(l.Seccomp)
		}
		if p := s.Process; p != nil {
			if p.OOMScoreAdj != nil {
				out.Linux.OomScoreAdj = api.Int(*p.OOMScoreAdj)
			}
			out.Linux.IoPriority = api.FromOCILinuxIOPriority(p.IOPriority)
			out.Linux.Scheduler = api.FromOCILinuxScheduler(p.Scheduler)
		}
		if r := l.IntelRdt; r != nil {
			out.Linux.Rdt = &api.LinuxRdt{ClosId: api.String(r.ClosID), Schemata: api.RepeatedString(r.Schemata),
				EnableMonitoring: api.Bool(r.EnableMonitoring)}
		}
	}
	return out
}

// seccompProfile is the CRI's choice as NRI names it; nil for none.
func seccompProfile(ref string) *api.SecurityProfile {
	switch {
	case ref == "":
		return nil
	case ref == "unconfined":
		return &api.SecurityProfile{ProfileType: api.SecurityProfile_UNCONFINED}
	case ref == "runtime/default" || ref == "docker/default":
		return &api.SecurityProfile{ProfileType: api.SecurityProfile_RUNTIME_DEFAULT}
	}
	path, _ := strings.CutPrefix(ref, "localhost/")
	return &api.SecurityProfile{ProfileType: api.SecurityProfile_LOCALHOST, LocalhostRef: path}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
