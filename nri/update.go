package nri

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"
)

// sync hands a registering plugin (or, at Start, the pre-installed ones)
// crib's pods and containers, and applies the updates it answers with. The
// first call, Start's, before crib serves the CRI, also tells the event
// table which containers plugins know.
func (n *NRI) sync(ctx context.Context, cb adaptation.SyncCB) error {
	pods, ctrs, err := n.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("list pods and containers for NRI plugins: %w", err)
	}
	if n.seeded.CompareAndSwap(false, true) {
		for _, c := range ctrs {
			n.state.seed(c.ID, c.Status)
		}
	}
	apiPods := make([]*api.PodSandbox, 0, len(pods))
	for _, p := range pods {
		apiPods = append(apiPods, toAPIPod(p))
	}
	// Plugins are synchronised with live containers only, as containerd
	// and CRI-O do: an exited one has nothing left to adjust.
	apiCtrs := make([]*api.Container, 0, len(ctrs))
	for _, c := range ctrs {
		if c.Status == StatusCreated || c.Status == StatusRunning {
			apiCtrs = append(apiCtrs, toAPIContainer(c))
		}
	}
	updates, err := cb(ctx, apiPods, apiCtrs)
	if err != nil {
		return err
	}
	n.applyUpdates(ctx, "Synchronize", updates)
	return nil
}

// updateFromPlugins applies the updates a plugin asks for unsolicited
// (UpdateContainers) and returns those that failed. A container that is
// gone or exited is skipped: there is nothing to update.
func (n *NRI) updateFromPlugins(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	var failed []*api.ContainerUpdate
	for _, u := range updates {
		if err := n.applyUpdate(ctx, u); err != nil {
			klog.FromContext(ctx).Info("NRI plugin's container update failed", "containerID", u.GetContainerId(),
				"ignoreFailure", u.GetIgnoreFailure(), "err", err.Error())
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	return failed, nil
}

// applyUpdates applies the updates of other containers a plugin answered
// an event with; a failure is logged, not the event's.
func (n *NRI) applyUpdates(ctx context.Context, op string, updates []*api.ContainerUpdate) {
	for _, u := range updates {
		if u == nil {
			continue
		}
		if err := n.applyUpdate(ctx, u); err != nil && !u.GetIgnoreFailure() {
			klog.FromContext(ctx).Error(err, "NRI plugin's container update failed", "event", op, "containerID", u.GetContainerId())
		}
	}
}

func (n *NRI) applyUpdate(ctx context.Context, u *api.ContainerUpdate) error {
	id := u.GetContainerId()
	cur, live, err := n.rt.Resources(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) || err == nil && !live {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := MergeResources(cur, u.GetLinux().GetResources())
	if err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	return n.rt.UpdateResources(ctx, id, r)
}

// MergeResources is cur with the fields a plugin set in u: NRI's updates
// (and UpdateContainer's answer) carry only what a plugin changed. What
// crib cannot change on a running container is refused, naming the field.
func MergeResources(cur *specs.LinuxResources, u *api.LinuxResources) (*specs.LinuxResources, error) {
	out := copyResources(cur)
	if u == nil {
		return out, nil
	}
	var refused []string
	if m := u.GetMemory(); m != nil {
		if out.Memory == nil {
			out.Memory = &specs.LinuxMemory{}
		}
		// A container without swap (memory+swap equal to memory, as
		// crib and containerd make it) keeps none when only its limit
		// changes, as NRI's own adjustment does.
		if m.GetLimit() != nil && m.GetSwap() == nil && (out.Memory.Swap == nil || out.Memory.Limit != nil && *out.Memory.Swap == *out.Memory.Limit) {
			out.Memory.Swap = m.GetLimit().Get()
		}
		setInt64(&out.Memory.Limit, m.GetLimit())
		setInt64(&out.Memory.Reservation, m.GetReservation())
		setInt64(&out.Memory.Swap, m.GetSwap())
		if v := m.GetSwappiness(); v != nil {
			out.Memory.Swappiness = v.Get()
		}
		if v := m.GetDisableOomKiller(); v != nil {
			out.Memory.DisableOOMKiller = v.Get()
		}
		if m.GetKernel() != nil || m.GetKernelTcp() != nil || m.GetUseHierarchy() != nil {
			refused = append(refused, "memory.kernel, memory.kernel_tcp and memory.use_hierarchy (cgroup v1 only, deprecated)")
		}
	}
	if c := u.GetCpu(); c != nil {
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		setUint64(&out.CPU.Shares, c.GetShares())
		setInt64(&out.CPU.Quota, c.GetQuota())
		setUint64(&out.CPU.Period, c.GetPeriod())
		setInt64(&out.CPU.RealtimeRuntime, c.GetRealtimeRuntime())
		setUint64(&out.CPU.RealtimePeriod, c.GetRealtimePeriod())
		if c.GetCpus() != "" {
			out.CPU.Cpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CPU.Mems = c.GetMems()
		}
	}
	for _, h := range u.GetHugepageLimits() {
		out.HugepageLimits = slices.DeleteFunc(out.HugepageLimits, func(l specs.LinuxHugepageLimit) bool { return l.Pagesize == h.GetPageSize() })
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if len(u.GetUnified()) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, u.GetUnified())
	}
	if p := u.GetPids(); p != nil {
		if p.GetLimit() > 0 {
			l := p.GetLimit()
			out.Pids = &specs.LinuxPids{Limit: &l}
		} else {
			out.Pids = nil // 0 or -1: unlimited
		}
	}
	if u.GetBlockioClass() != nil {
		refused = append(refused, "blockio_class (a running container keeps its block I/O class)")
	}
	if u.GetRdtClass() != nil {
		refused = append(refused, "rdt_class (a running container keeps its RDT class)")
	}
	if len(u.GetDevices()) > 0 {
		refused = append(refused, "devices (device rules change only with the container's devices, at creation)")
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("NRI resource update: crib cannot apply %v: %w", refused, errdefs.ErrFailedPrecondition)
	}
	return out, nil
}

func setInt64(dst **int64, v *api.OptionalInt64) {
	if v != nil {
		*dst = v.Get()
	}
}

func setUint64(dst **uint64, v *api.OptionalUInt64) {
	if v != nil {
		*dst = v.Get()
	}
}

// copyResources copies what MergeResources may change, so the record's
// copy is never written through.
func copyResources(r *specs.LinuxResources) *specs.LinuxResources {
	if r == nil {
		return &specs.LinuxResources{}
	}
	out := *r
	if r.Memory != nil {
		m := *r.Memory
		out.Memory = &m
	}
	if r.CPU != nil {
		c := *r.CPU
		out.CPU = &c
	}
	out.HugepageLimits = slices.Clone(r.HugepageLimits)
	out.Unified = maps.Clone(r.Unified)
	return &out
}
