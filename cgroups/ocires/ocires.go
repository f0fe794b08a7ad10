// Package ocires converts an OCI runtime-spec's linux.resources into
// cgroups.Resources, for launchers that start containers from OCI specs.
//
// It imports cgroups and runtime-spec only. Internal to crib; no API
// compatibility promised.
package ocires

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
)

// Convert maps r to cgroups.Resources and validates the result. A nil r is
// no resources. OCI's memory.swap is memory+swap (the v1 meaning); it becomes
// a swap-only limit here. The device rules are taken as they are, in order;
// a spec with a devices list that is present but empty denies every device,
// as runc does.
func Convert(r *specs.LinuxResources) (*cgroups.Resources, error) {
	if r == nil {
		return nil, nil
	}
	if err := unmapped(r); err != nil {
		return nil, err
	}
	out := &cgroups.Resources{Unified: r.Unified}
	if c := r.CPU; c != nil {
		if c.Shares != nil && *c.Shares > 0 {
			w := cgroups.CPUSharesToWeight(*c.Shares)
			out.CPUWeight = &w
		}
		if c.Quota != nil || c.Period != nil {
			m := &cgroups.CPUMax{QuotaMicros: cgroups.Max}
			if c.Quota != nil && *c.Quota > 0 {
				m.QuotaMicros = *c.Quota
			}
			if c.Period != nil {
				m.PeriodMicros = *c.Period
			}
			out.CPUMax = m
		}
		out.CpusetCPUs, out.CpusetMems = c.Cpus, c.Mems
	}
	if m := r.Memory; m != nil && m.Limit != nil {
		out.MemoryMaxBytes = m.Limit
		if m.Swap != nil {
			swap, err := cgroups.SwapFromMemsw(*m.Swap, *m.Limit)
			if err != nil {
				return nil, err
			}
			out.MemorySwapMaxBytes = &swap
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		limit := *p.Limit
		if limit <= 0 {
			limit = cgroups.Max
		}
		out.PidsMax = &limit
	}
	for _, h := range r.HugepageLimits {
		if out.HugetlbMaxBytes == nil {
			out.HugetlbMaxBytes = map[string]int64{}
		}
		out.HugetlbMaxBytes[h.Pagesize] = int64(h.Limit)
	}
	if r.BlockIO != nil {
		b, err := blockIO(r.BlockIO)
		if err != nil {
			return nil, err
		}
		out.BlockIO = b
	}
	if r.Devices != nil {
		out.Devices = make([]cgroups.DeviceRule, 0, len(r.Devices))
		for i, d := range r.Devices {
			if len(d.Type) > 1 {
				return nil, cgroups.Invalidf("device rule %d: type %q: want a, c or b", i, d.Type)
			}
			out.Devices = append(out.Devices, deviceRule(d))
		}
	}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	return out, nil
}

// deviceRule maps an OCI device cgroup rule: a missing type is every
// device ("a"), a missing major or minor any number, a missing access all of
// it (runtime-spec's defaults).
func deviceRule(d specs.LinuxDeviceCgroup) cgroups.DeviceRule {
	out := cgroups.DeviceRule{Allow: d.Allow, Type: cgroups.DeviceAll, Major: cgroups.AnyDevice, Minor: cgroups.AnyDevice,
		Access: cgroups.DeviceAccess(d.Access)}
	if d.Type != "" {
		out.Type = cgroups.DeviceType(d.Type[0])
	}
	if d.Major != nil {
		out.Major = *d.Major
	}
	if d.Minor != nil {
		out.Minor = *d.Minor
	}
	return out
}

// blockIO maps OCI's block I/O settings: the four throttle lists become one
// entry per device. Leaf weights (CFQ's, gone with it in Linux 5.0) are
// refused, not dropped.
func blockIO(b *specs.LinuxBlockIO) (*cgroups.BlockIO, error) {
	if b.LeafWeight != nil {
		return nil, cgroups.Invalidf("block I/O leaf weight %d: no kernel crib runs on has leaf weights", *b.LeafWeight)
	}
	out := &cgroups.BlockIO{}
	if b.Weight != nil {
		if *b.Weight == 0 {
			return nil, cgroups.Invalidf("block I/O weight 0: want %d..%d", cgroups.MinBlkioWeight, cgroups.MaxBlkioWeight)
		}
		out.Weight = *b.Weight
	}
	for _, w := range b.WeightDevice {
		if w.LeafWeight != nil {
			return nil, cgroups.Invalidf("block I/O leaf weight %d for device %d:%d: no kernel crib runs on has leaf weights", *w.LeafWeight, w.Major, w.Minor)
		}
		if w.Weight == nil {
			continue // a device entry with only a leaf weight, refused above
		}
		out.WeightDevices = append(out.WeightDevices, cgroups.DeviceWeight{Major: w.Major, Minor: w.Minor, Weight: *w.Weight})
	}
	index := map[[2]int64]int{}
	for _, l := range []struct {
		list []specs.LinuxThrottleDevice
		set  func(*cgroups.DeviceThrottle, *uint64)
	}{
		{b.ThrottleReadBpsDevice, func(t *cgroups.DeviceThrottle, v *uint64) { t.ReadBps = v }},
		{b.ThrottleWriteBpsDevice, func(t *cgroups.DeviceThrottle, v *uint64) { t.WriteBps = v }},
		{b.ThrottleReadIOPSDevice, func(t *cgroups.DeviceThrottle, v *uint64) { t.ReadIOPS = v }},
		{b.ThrottleWriteIOPSDevice, func(t *cgroups.DeviceThrottle, v *uint64) { t.WriteIOPS = v }},
	} {
		for _, d := range l.list {
			k := [2]int64{d.Major, d.Minor}
			i, ok := index[k]
			if !ok {
				i = len(out.Throttles)
				index[k] = i
				out.Throttles = append(out.Throttles, cgroups.DeviceThrottle{Major: d.Major, Minor: d.Minor})
			}
			rate := d.Rate
			l.set(&out.Throttles[i], &rate)
		}
	}
	return out, nil
}

// unmapped refuses the resources Convert has no cgroup setting for, rather
// than dropping them: a CRI request never sets them, an NRI plugin may.
// (A swap limit without a memory limit, which the CRI can send, stays
// unapplied: there is no limit to add it to.)
func unmapped(r *specs.LinuxResources) error {
	var set []string
	if c := r.CPU; c != nil {
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			set = append(set, "cpu.realtimeRuntime/realtimePeriod")
		}
		if c.Idle != nil || c.Burst != nil {
			set = append(set, "cpu.idle/burst")
		}
	}
	if m := r.Memory; m != nil {
		if m.Reservation != nil {
			set = append(set, "memory.reservation")
		}
		if m.Kernel != nil || m.KernelTCP != nil { //nolint:staticcheck // refusing the deprecated fields
			set = append(set, "memory.kernel/kernelTCP")
		}
		if m.Swappiness != nil {
			set = append(set, "memory.swappiness")
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			set = append(set, "memory.disableOOMKiller")
		}
		if m.UseHierarchy != nil || m.CheckBeforeUpdate != nil {
			set = append(set, "memory.useHierarchy/checkBeforeUpdate")
		}
	}
	if r.Network != nil {
		set = append(set, "network")
	}
	if len(r.Rdma) > 0 {
		set = append(set, "rdma")
	}
	if len(set) > 0 {
		return cgroups.Invalidf("linux.resources %v: crib does not apply these", set)
	}
	return nil
}
