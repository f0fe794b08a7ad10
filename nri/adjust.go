package nri

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Resolvers turn what an adjustment names into spec values, with crib's
// own checks.
type Resolvers struct {
	// RDT resolves an RDT class to the spec's intelRdt (strictly, as a
	// container annotation's class is).
	RDT func(class string) (*specs.LinuxIntelRdt, error)
	// BlockIO resolves a block I/O class to the spec's blockIO; nil
	// refuses a class (FailedPrecondition).
	BlockIO func(class string) (*specs.LinuxBlockIO, error)
	// CDI injects CDI devices by fully qualified name; nil refuses them.
	CDI func(s *specs.Spec, devices []string) error
}

// CreateContainer tells plugins a container is being created and applies
// what they adjust to c.Spec, in place; the updates of other containers
// they answer with are applied. On failure plugins are told the container
// stopped and is gone. Otherwise, if the container is not made after all,
// the caller undoes this with RemoveContainer. The adjusted spec still has
// to pass crib's own checks (cri/spec.CheckAdjusted).
func (n *NRI) CreateContainer(ctx context.Context, p Pod, c Container, res Resolvers) (retErr error) {
	if n == nil {
		return nil
	}
	n.state.set(c.ID, StatusCreated)
	if !n.Active() {
		return nil
	}
	defer func() {
		if retErr != nil {
			_ = n.RemoveContainer(context.WithoutCancel(ctx), c.ID, func() (Pod, Container, error) { return p, c, nil })
		}
	}()
	resp, err := n.a.CreateContainer(ctx, &api.CreateContainerRequest{Pod: toAPIPod(p), Container: toAPIContainer(c)})
	if err != nil {
		return eventErr(ctx, "CreateContainer", err)
	}
	if err := Adjust(c.Spec, resp.GetAdjust(), res); err != nil {
		return err
	}
	n.applyUpdates(ctx, "CreateContainer", resp.GetUpdate())
	return nil
}

// UpdateContainer tells plugins a container's resources are to change to
// r, and returns them as plugins adjusted them; the updates of other
// containers they answer with are applied. An error fails the update.
func (n *NRI) UpdateContainer(ctx context.Context, id string, r *specs.LinuxResources, info Info) (*specs.LinuxResources, error) {
	if !n.Active() {
		return r, nil
	}
	var resp *api.UpdateContainerResponse
	err := n.containerEvent(ctx, "UpdateContainer", info, func(p *api.PodSandbox, c *api.Container) error {
		var err error
		resp, err = n.a.UpdateContainer(ctx, &api.UpdateContainerRequest{Pod: p, Container: c, LinuxResources: api.FromOCILinuxResources(r, nil)})
		return err
	})
	if err != nil {
		return nil, err
	}
	// The response lists the other containers' updates, then this one's
	// (nil when no plugin changed it), each with only what was changed.
	var others []*api.ContainerUpdate
	for _, u := range resp.GetUpdate() {
		if u == nil {
			continue
		}
		if u.GetContainerId() != id {
			others = append(others, u)
			continue
		}
		merged, err := MergeResources(r, u.GetLinux().GetResources())
		if err != nil {
			return nil, err
		}
		r = keepNoSwap(r, merged)
	}
	n.applyUpdates(ctx, "UpdateContainer", others)
	return r, nil
}

// keepNoSwap: the answer for the updated container carries the whole
// request, swap included, with what plugins changed. A container without
// swap (memory+swap equal to memory) whose limit a plugin changed keeps
// none, as NRI's own adjustment of a new container does.
func keepNoSwap(req, out *specs.LinuxResources) *specs.LinuxResources {
	rm, om := req.Memory, out.Memory
	if rm == nil || om == nil || rm.Limit == nil || rm.Swap == nil || om.Limit == nil || om.Swap == nil {
		return out
	}
	if *rm.Swap == *rm.Limit && *om.Swap == *rm.Swap && *om.Limit != *rm.Limit {
		l := *om.Limit
		om.Swap = &l
	}
	return out
}

// Adjust applies a plugins' adjustment to s, using NRI's own generator
// over crib's (specGen): the same order and rules as containerd and CRI-O.
// What crib cannot express at all is refused here; what it checks like a
// CRI request is left to cri/spec.CheckAdjusted.
func Adjust(s *specs.Spec, adj *api.ContainerAdjustment, res Resolvers) error {
	if adj == nil {
		return nil
	}
	if len(adj.GetCDIDevices()) > 0 && res.CDI == nil {
		return fmt.Errorf("NRI adjustment: CDI devices %v: this crib has no CDI support: %w", cdiNames(adj), errdefs.ErrFailedPrecondition)
	}
	if bio := adj.GetLinux().GetResources().GetBlockioClass(); res.BlockIO == nil && bio != nil && bio.GetValue() != "" {
		return fmt.Errorf("NRI adjustment: block I/O class %q: no block I/O classes on this node: %w", bio.GetValue(), errdefs.ErrFailedPrecondition)
	}
	if s.Process == nil || s.Linux == nil {
		return fmt.Errorf("NRI adjustment: the spec has no process or linux section: %w", errdefs.ErrInvalidArgument)
	}
	if err := unapplied(adj.GetLinux().GetResources()); err != nil {
		return err
	}
	var opts []generate.GeneratorOption
	if res.BlockIO != nil {
		opts = append(opts, generate.WithBlockIOResolver(res.BlockIO))
	}
	if res.RDT != nil {
		opts = append(opts, generate.WithRdtResolver(res.RDT))
	} else if rc := adj.GetLinux().GetResources().GetRdtClass(); rc != nil && rc.GetValue() != "" {
		return fmt.Errorf("NRI adjustment: RDT class %q: no RDT on this node: %w", rc.GetValue(), errdefs.ErrFailedPrecondition)
	}
	if res.CDI != nil {
		opts = append(opts, generate.WithCDIDeviceInjector(res.CDI))
	}
	if err := generate.SpecGenerator(specGen{s}, opts...).Adjust(adj); err != nil {
		return fmt.Errorf("NRI adjustment: %w", classify(err))
	}
	s.Process.Rlimits = dedupeRlimits(s.Process.Rlimits)
	return nil
}

// classify keeps an error's kind, else makes it InvalidArgument: what a
// plugin asked for does not fit the spec.
func classify(err error) error {
	for _, k := range []error{errdefs.ErrFailedPrecondition, errdefs.ErrInvalidArgument, errdefs.ErrNotFound} {
		if errors.Is(err, k) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
}

func cdiNames(adj *api.ContainerAdjustment) []string {
	var names []string
	for _, d := range adj.GetCDIDevices() {
		names = append(names, d.GetName())
	}
	return names
}

// dedupeRlimits keeps the last limit of each type: NRI appends a plugin's
// rlimits to the spec's, and a later one is what the plugin meant.
func dedupeRlimits(in []specs.POSIXRlimit) []specs.POSIXRlimit {
	seen := map[string]bool{}
	var out []specs.POSIXRlimit
	for i := len(in) - 1; i >= 0; i-- {
		if seen[in[i].Type] {
			continue
		}
		seen[in[i].Type] = true
		out = append(out, in[i])
	}
	slices.Reverse(out)
	return out
}

// specGen is runtime-tools' generator interface (what NRI's generate
// drives) over a plain spec, with runtime-tools' semantics, so that crib
// does not take runtime-tools on.
type specGen struct{ s *specs.Spec }

func (g specGen) Spec() *specs.Spec { return g.s }

func (g specGen) resources() *specs.LinuxResources {
	if g.s.Linux.Resources == nil {
		g.s.Linux.Resources = &specs.LinuxResources{}
	}
	return g.s.Linux.Resources
}

func (g specGen) cpu() *specs.LinuxCPU {
	r := g.resources()
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}

func (g specGen) memory() *specs.LinuxMemory {
	r := g.resources()
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func (g specGen) hooks() *specs.Hooks {
	if g.s.Hooks == nil {
		g.s.Hooks = &specs.Hooks{}
	}
	return g.s.Hooks
}

func (g specGen) AddAnnotation(key, value string) {
	if g.s.Annotations == nil {
		g.s.Annotations = map[string]string{}
	}
	g.s.Annotations[key] = value
}

func (g specGen) RemoveAnnotation(key string) { delete(g.s.Annotations, key) }

// AddDevice replaces a device of the same path.
func (g specGen) AddDevice(d specs.LinuxDevice) {
	for i := range g.s.Linux.Devices {
		if g.s.Linux.Devices[i].Path == d.Path {
			g.s.Linux.Devices[i] = d
			return
		}
	}
	g.s.Linux.Devices = append(g.s.Linux.Devices, d)
}

func (g specGen) RemoveDevice(path string) {
	g.s.Linux.Devices = slices.DeleteFunc(g.s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == path })
}

func (g specGen) AddOrReplaceLinuxNamespace(ns, path string) error {
	t := specs.LinuxNamespaceType(ns)
	for i := range g.s.Linux.Namespaces {
		if g.s.Linux.Namespaces[i].Type == t {
			g.s.Linux.Namespaces[i].Path = path
			return nil
		}
	}
	g.s.Linux.Namespaces = append(g.s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
	return nil
}

func (g specGen) RemoveLinuxNamespace(ns string) error {
	t := specs.LinuxNamespaceType(ns)
	g.s.Linux.Namespaces = slices.DeleteFunc(g.s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
	return nil
}

func (g specGen) AddPreStartHook(h specs.Hook)  { g.hooks().Prestart = append(g.hooks().Prestart, h) } //nolint:staticcheck // NRI still sends prestart hooks
func (g specGen) AddPostStartHook(h specs.Hook) { g.hooks().Poststart = append(g.hooks().Poststart, h) }
func (g specGen) AddPostStopHook(h specs.Hook)  { g.hooks().Poststop = append(g.hooks().Poststop, h) }

// AddProcessEnv replaces a variable of the same name.
func (g specGen) AddProcessEnv(name, value string) {
	kv := name + "=" + value
	for i, e := range g.s.Process.Env {
		if k, _, _ := strings.Cut(e, "="); k == name {
			g.s.Process.Env[i] = kv
			return
		}
	}
	g.s.Process.Env = append(g.s.Process.Env, kv)
}

func (g specGen) ClearProcessEnv()             { g.s.Process.Env = nil }
func (g specGen) SetProcessArgs(args []string) { g.s.Process.Args = slices.Clone(args) }
func (g specGen) SetProcessOOMScoreAdj(adj int) {
	g.s.Process.OOMScoreAdj = &adj
}

func (g specGen) AddLinuxResourcesDevice(allow bool, devType string, major, minor *int64, access string) {
	r := g.resources()
	r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: allow, Type: devType, Major: major, Minor: minor, Access: access})
}

// AddLinuxResourcesHugepageLimit replaces the limit of the same page size.
func (g specGen) AddLinuxResourcesHugepageLimit(pageSize string, limit uint64) {
	r := g.resources()
	for i := range r.HugepageLimits {
		if r.HugepageLimits[i].Pagesize == pageSize {
			r.HugepageLimits[i].Limit = limit
			return
		}
	}
	r.HugepageLimits = append(r.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: pageSize, Limit: limit})
}

func (g specGen) AddLinuxResourcesUnified(key, val string) {
	r := g.resources()
	if r.Unified == nil {
		r.Unified = map[string]string{}
	}
	r.Unified[key] = val
}

func (g specGen) AddMount(m specs.Mount) { g.s.Mounts = append(g.s.Mounts, m) }
func (g specGen) ClearMounts()           { g.s.Mounts = nil }
func (g specGen) Mounts() []specs.Mount  { return slices.Clone(g.s.Mounts) }
func (g specGen) RemoveMount(dest string) {
	g.s.Mounts = slices.DeleteFunc(g.s.Mounts, func(m specs.Mount) bool { return m.Destination == dest })
}

func (g specGen) AddLinuxSysctl(key, value string) {
	if g.s.Linux.Sysctl == nil {
		g.s.Linux.Sysctl = map[string]string{}
	}
	g.s.Linux.Sysctl[key] = value
}

func (g specGen) RemoveLinuxSysctl(key string)    { delete(g.s.Linux.Sysctl, key) }
func (g specGen) SetLinuxCgroupsPath(path string) { g.s.Linux.CgroupsPath = path }

func (g specGen) SetLinuxResourcesCPUCpus(cpus string)        { g.cpu().Cpus = cpus }
func (g specGen) SetLinuxResourcesCPUMems(mems string)        { g.cpu().Mems = mems }
func (g specGen) SetLinuxResourcesCPUPeriod(period uint64)    { g.cpu().Period = &period }
func (g specGen) SetLinuxResourcesCPUQuota(quota int64)       { g.cpu().Quota = &quota }
func (g specGen) SetLinuxResourcesCPUShares(shares uint64)    { g.cpu().Shares = &shares }
func (g specGen) SetLinuxResourcesCPURealtimePeriod(p uint64) { g.cpu().RealtimePeriod = &p }
func (g specGen) SetLinuxResourcesCPURealtimeRuntime(t int64) { g.cpu().RealtimeRuntime = &t }
func (g specGen) SetLinuxResourcesMemoryLimit(limit int64)    { g.memory().Limit = &limit }
func (g specGen) SetLinuxResourcesMemorySwap(swap int64)      { g.memory().Swap = &swap }

func (g specGen) SetLinuxRootPropagation(rp string) error {
	switch rp {
	case "", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
		g.s.Linux.RootfsPropagation = rp
		return nil
	}
	return fmt.Errorf("rootfs propagation %q: %w", rp, errdefs.ErrInvalidArgument)
}

// unapplied refuses the resources NRI's generator would drop (it applies a
// memory limit and makes swap equal to it, nothing else of memory) or that
// crib's cgroups do not set: asked for, they are refused, not lost.
func unapplied(r *api.LinuxResources) error {
	var set []string
	if m := r.GetMemory(); m != nil {
		if m.GetReservation() != nil {
			set = append(set, "memory.reservation")
		}
		if sw := m.GetSwap(); sw != nil && (m.GetLimit() == nil || sw.GetValue() != m.GetLimit().GetValue()) {
			set = append(set, "memory.swap (other than the limit)")
		}
		if m.GetKernel() != nil || m.GetKernelTcp() != nil {
			set = append(set, "memory.kernel/kernelTcp")
		}
		if m.GetSwappiness() != nil {
			set = append(set, "memory.swappiness")
		}
		if m.GetDisableOomKiller() != nil {
			set = append(set, "memory.disableOomKiller")
		}
		if m.GetUseHierarchy() != nil {
			set = append(set, "memory.useHierarchy")
		}
	}
	if c := r.GetCpu(); c != nil && (c.GetRealtimeRuntime() != nil || c.GetRealtimePeriod() != nil) {
		set = append(set, "cpu.realtimeRuntime/realtimePeriod")
	}
	if len(set) > 0 {
		return fmt.Errorf("NRI adjustment: linux.resources %v: crib does not apply these: %w", set, errdefs.ErrFailedPrecondition)
	}
	return nil
}
