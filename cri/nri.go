package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/nri"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/image"
	"github.com/crib-runtime/crib/sandbox"
)

// nriPod is what NRI plugins learn of a pod, from its record.
func nriPod(p *sandbox.Pod) nri.Pod {
	out := nri.Pod{
		ID: p.ID, Name: p.Name, UID: p.UID, Namespace: p.Namespace, Labels: p.Labels, Annotations: p.Annotations,
		RuntimeHandler: p.RuntimeHandler, CgroupParent: p.CgroupParent, Cgroup: p.Cgroup,
		Namespaces: map[string]string{}, IPs: p.IPs, Overhead: p.Overhead, Resources: p.Resources,
	}
	for t, path := range map[string]string{"network": p.NetNS, "ipc": p.IPCNS, "uts": p.UTSNS, "user": p.UserNS} {
		if path != "" {
			out.Namespaces[t] = path
		}
	}
	if p.SharePID && p.PausePID != 0 {
		out.Pid = p.PausePID
		out.Namespaces["pid"] = "/proc/" + strconv.Itoa(p.PausePID) + "/ns/pid"
	}
	return out
}

var nriStatuses = map[runtime.Status]nri.Status{
	runtime.StatusCreated: nri.StatusCreated,
	runtime.StatusRunning: nri.StatusRunning,
	runtime.StatusExited:  nri.StatusStopped,
}

// nriContainer is what NRI plugins learn of a container, from its record
// (the spec decoded) and its live state.
func nriContainer(st runtime.State) (nri.Container, error) {
	c := nri.Container{
		ID: st.ID, PodID: st.SandboxID, Name: st.Name, Status: nriStatuses[st.Status],
		Labels: st.Labels, Annotations: st.Annotations, Pid: st.Pid,
		CreatedAt: st.CreatedAt, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
		ExitCode: st.ExitCode, Reason: st.Reason, Message: st.Message,
		Image: st.Image, RepoDigest: st.RepoDigest, ImageID: st.ImageRef, CDIDevices: st.CDIDevices,
	}
	if len(st.Spec) > 0 {
		c.Spec = &specs.Spec{}
		if err := json.Unmarshal(st.Spec, c.Spec); err != nil {
			return nri.Container{}, fmt.Errorf("container %s: decode recorded spec: %w", st.ID, err)
		}
	}
	return c, nil
}

// nriInfo builds an event's pod and container from the records, when a
// plugin will receive it. st, when given, is the container's state
// already read (a container being removed has no record to read again).
func (s *Server) nriInfo(ctx context.Context, podID, id string, st *runtime.State) nri.Info {
	return func() (nri.Pod, nri.Container, error) {
		pod, err := s.sandboxes.Get(podID)
		if err != nil {
			return nri.Pod{}, nri.Container{}, err
		}
		// Read now, not the first call's: one info serves an event and its
		// post-event (Start, then PostStart), which must see the change.
		cur := st
		if cur == nil {
			now, err := s.containers.Status(ctx, id)
			if err != nil {
				return nri.Pod{}, nri.Container{}, err
			}
			cur = &now
		}
		c, err := nriContainer(*cur)
		return nriPod(pod), c, err
	}
}

// stateForNRI reads a container's state before it is removed, for the
// RemoveContainer event after; nil when no plugin is connected.
func (s *Server) stateForNRI(ctx context.Context, id string) *runtime.State {
	if !s.nri.Active() {
		return nil
	}
	st, err := s.containers.Status(ctx, id)
	if err != nil {
		return nil
	}
	return &st
}

// logNRI logs an NRI event that failed after the fact (Post events, a
// stop or removal that happened anyway): it changes nothing for the caller.
func logNRI(ctx context.Context, err error, id string) {
	if err != nil {
		klog.FromContext(ctx).Error(err, "NRI event failed", "id", id)
	}
}

// NRIRunPod is the pod's BeforeReady hook: NRI plugins see the pod before
// it is ready, and may refuse it. On a refusal they are told the pod
// stopped and is gone, as for any pod whose creation failed.
func (s *Server) NRIRunPod(ctx context.Context, p *sandbox.Pod) error {
	if h, ok := ctx.Value(syncHoldKey{}).(*syncHold); ok && h.unblock == nil {
		h.unblock = s.nri.BlockSync()
	}
	err := s.nri.RunPodSandbox(ctx, nriPod(p))
	if err != nil {
		s.NRIUndoRunPod(context.WithoutCancel(ctx), p)
		return err
	}
	return nil
}

// NRIUndoRunPod is the pod's AfterUnready hook: the pod NRIRunPod
// announced was not made after all.
func (s *Server) NRIUndoRunPod(ctx context.Context, p *sandbox.Pod) error {
	np := nriPod(p)
	logNRI(ctx, s.nri.StopPodSandbox(ctx, np), p.ID)
	logNRI(ctx, s.nri.RemovePodSandbox(ctx, np), p.ID)
	return nil
}

// NRIRuntime is what NRI synchronises plugins from and applies their
// unsolicited updates through.
func (s *Server) NRIRuntime() nri.Runtime { return nriRuntime{s} }

type nriRuntime struct{ s *Server }

// List gives the pods past their creation (a pod still being created
// reaches plugins with its RunPodSandbox) and their containers.
func (r nriRuntime) List(ctx context.Context) ([]nri.Pod, []nri.Container, error) {
	var pods []nri.Pod
	known := map[string]bool{}
	for _, p := range r.s.sandboxes.List(sandbox.Filter{}) {
		if p.State == sandbox.StateCreating {
			continue
		}
		pods = append(pods, nriPod(p))
		known[p.ID] = true
	}
	all, err := r.s.containers.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	var ctrs []nri.Container
	for _, st := range all {
		if !known[st.SandboxID] {
			continue
		}
		c, err := nriContainer(st)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Container left out of NRI synchronisation", "containerID", st.ID)
			continue
		}
		ctrs = append(ctrs, c)
	}
	return pods, ctrs, nil
}

func (r nriRuntime) Resources(ctx context.Context, id string) (*specs.LinuxResources, bool, error) {
	st, err := r.s.containers.Status(ctx, id)
	if err != nil {
		return nil, false, err
	}
	live := st.Status == runtime.StatusCreated || st.Status == runtime.StatusRunning
	return st.Resources, live, nil
}

// UpdateResources is UpdateContainerResources without NRI events. Device
// rules stay as created: a CRI update carries none either.
func (r nriRuntime) UpdateResources(ctx context.Context, id string, res *specs.LinuxResources) error {
	if res == nil {
		return fmt.Errorf("update container %s: no resources: %w", id, errdefs.ErrInvalidArgument)
	}
	c := *res
	c.Devices = nil
	err := r.s.containers.UpdateResources(ctx, id, &c)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil // removed meanwhile
	}
	return err
}

// nriPending is the pod and container of a container not recorded yet.
// cdiDevices are those already applied, asked for by cdi_devices or by
// annotation.
func (s *Server) nriPending(podID, id string, req *criapi.CreateContainerRequest, img image.Image, oci *specs.Spec, cdiDevices []string) nri.Info {
	return func() (nri.Pod, nri.Container, error) {
		pod, err := s.sandboxes.Get(podID)
		if err != nil {
			return nri.Pod{}, nri.Container{}, err
		}
		cfg := req.GetConfig()
		c := nri.Container{
			ID: id, PodID: podID, Name: cfg.GetMetadata().GetName(), Status: nri.StatusCreated,
			Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), Spec: oci, CreatedAt: time.Now(),
			Seccomp: spec.SeccompRef(cfg.GetLinux().GetSecurityContext().GetSeccomp(), cfg.GetLinux().GetSecurityContext().GetSeccompProfilePath()),
			Image:   shownImage(img, cfg.GetImage()), RepoDigest: repoDigest(img, cfg.GetImage().GetImage()), ImageID: img.ID,
			CDIDevices: cdiDevices,
		}
		return nriPod(pod), c, nil
	}
}

// nriCreate lets NRI plugins see the container and adjust its spec, in
// place, then checks what they changed as crib checks a CRI request, and
// takes the RDT class they chose. On an error plugins have been told the
// container is gone.
func (s *Server) nriCreate(ctx context.Context, req *criapi.CreateContainerRequest, img image.Image, oci *specs.Spec, in *spec.Input, cdiDevices []string) error {
	info := s.nriPending(in.SandboxID, in.ID, req, img, oci, cdiDevices)
	if !s.nri.Active() {
		return s.nri.CreateContainer(ctx, nri.Pod{}, nri.Container{ID: in.ID}, nri.Resolvers{})
	}
	pod, c, err := info()
	if err != nil {
		return err
	}
	before, err := cloneSpec(oci)
	if err != nil {
		return err
	}
	// A plugin's CDI devices are applied and checked as the container's own.
	var added []string
	addCDI := func(sp *specs.Spec, names []string) error {
		applied, err := s.injectCDI(ctx, *in, sp, names)
		added = append(added, applied...)
		return err
	}
	// A plugin's block I/O class is resolved here, and what it resolved
	// to is the only blockIO CheckAdjusted lets through.
	var bioClass string
	var bio *specs.LinuxBlockIO
	resolveBlockIO := func(class string) (*specs.LinuxBlockIO, error) {
		b, err := s.nriBlockIOClass(class)
		if err == nil {
			bioClass, bio = class, b
		}
		return b, err
	}
	if err := s.nri.CreateContainer(ctx, pod, c, nri.Resolvers{RDT: s.nriRDTClass, BlockIO: resolveBlockIO, CDI: addCDI}); err != nil {
		return err
	}
	sc := req.GetConfig().GetLinux().GetSecurityContext()
	check := spec.AdjustedInput{Privileged: sc.GetPrivileged(), Stat: statHost,
		HostNetwork: in.NetNS == "", HostIPC: in.IPCNS == "", BlockIO: bio}
	if r := oci.Linux.Resources; r != nil && r.BlockIO != nil && bio != nil && reflect.DeepEqual(r.BlockIO, bio) {
		in.BlockIOClass = bioClass
	}
	in.PluginCDIDevices = added
	err = spec.CheckAdjusted(before, oci, check)
	if err == nil {
		err = s.nriTakeRDTClass(ctx, before, oci, in)
	}
	if err != nil {
		logNRI(ctx, s.nri.RemoveContainer(context.WithoutCancel(ctx), in.ID, info), in.ID)
	}
	return err
}

// nriRDTClass resolves a plugin's RDT class as strictly as an annotation's.
func (s *Server) nriRDTClass(class string) (*specs.LinuxIntelRdt, error) {
	resolved, warning, err := s.classes.Check(class)
	if err != nil {
		return nil, err
	}
	if warning != nil || resolved == "" {
		klog.Background().Info("RDT class from an NRI plugin not applied", "class", class, "reason", fmt.Sprint(warning))
		return nil, nil
	}
	if resolved == spec.RootRDTClass {
		return &specs.LinuxIntelRdt{ClosID: "/"}, nil
	}
	return &specs.LinuxIntelRdt{ClosID: resolved}, nil
}

// nriBlockIOClass resolves a plugin's block I/O class; a node without
// classes configured refuses it (FailedPrecondition), an unknown class is
// InvalidArgument.
func (s *Server) nriBlockIOClass(class string) (*specs.LinuxBlockIO, error) {
	if s.blockIO == nil {
		return nil, fmt.Errorf("block I/O class %q: no block I/O classes are configured (blockio.config_file): %w", class, errdefs.ErrFailedPrecondition)
	}
	return s.blockIO.Resolve(class)
}

// nriTakeRDTClass makes the class in the adjusted spec the container's
// (the record's class is what the shim places it in), checking one a
// plugin set as a CLOS id directly, which skips the resolver.
func (s *Server) nriTakeRDTClass(ctx context.Context, before, after *specs.Spec, in *spec.Input) error {
	if reflect.DeepEqual(before.Linux.IntelRdt, after.Linux.IntelRdt) {
		return nil
	}
	r := after.Linux.IntelRdt
	if r != nil && r.ClosID == "" && r.EnableMonitoring {
		return fmt.Errorf("NRI adjustment: linux.intelRdt.enableMonitoring without a class: crib monitors the containers of an RDT class: %w", errdefs.ErrFailedPrecondition)
	}
	if r == nil || r.ClosID == "" {
		in.RDTClass = ""
		after.Linux.IntelRdt = nil
		return nil
	}
	class := r.ClosID
	if class == "/" {
		class = spec.RootRDTClass
	}
	resolved, warning, err := s.classes.Check(class)
	if err != nil {
		return fmt.Errorf("NRI adjustment: linux.intelRdt.closID: %w", err)
	}
	if warning != nil {
		klog.FromContext(ctx).Info("RDT class from an NRI plugin not applied", "containerID", in.ID, "reason", warning.Error())
		after.Linux.IntelRdt = nil
	}
	in.RDTClass = resolved
	return nil
}

func cloneSpec(s *specs.Spec) (*specs.Spec, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("copy spec: %w", err)
	}
	var out specs.Spec
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("copy spec: %w", err)
	}
	return &out, nil
}

// Evict stops a container at once because an NRI plugin asked, and tells
// plugins it stopped.
func (r nriRuntime) Evict(ctx context.Context, id, reason string) error {
	podID, err := r.s.containers.Sandbox(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.s.containers.Stop(ctx, id, 0); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("evict container %s (%s): %w", id, reason, err)
	}
	logNRI(ctx, r.s.nri.StopContainer(ctx, id, r.s.nriInfo(ctx, podID, id, nil)), id)
	return nil
}

// syncHold is RunPodSandbox's hold on plugin synchronisation, taken by
// NRIRunPod and released when the run returns (the pod READY, or undone).
type syncHold struct{ unblock func() }

func (h *syncHold) release() {
	if h.unblock != nil {
		h.unblock()
	}
}

type syncHoldKey struct{}

func withSyncHold(ctx context.Context, h *syncHold) context.Context {
	return context.WithValue(ctx, syncHoldKey{}, h)
}
