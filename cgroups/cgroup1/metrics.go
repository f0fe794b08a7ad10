package cgroup1

import (
	"bytes"
	"strconv"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Metrics implements cgroups.Manager: Stats, then the memory, limit,
// blkio and pid files only the metrics report, in v2 terms.
func (m *Manager) Metrics(path string) (*cgroups.Metrics, error) {
	p, err := cgroups.CleanPath(path)
	if err != nil {
		return nil, err
	}
	s, err := m.Stats(p)
	if err != nil {
		return nil, err
	}
	out := &cgroups.Metrics{Stats: *s}
	rel := cgroups.Rel(p)
	buf := make([]byte, 0, 4096)
	read := func(ctl, file string) ([]byte, bool, error) {
		root := m.ctl[ctl]
		if root == nil {
			return nil, false, nil
		}
		return root.ReadOptional(rel, file, &buf)
	}
	var memsw uint64
	var io ioCounters
	each := []struct {
		ctl, file string
		parse     func([]byte)
	}{
		{"memory", "memory.stat", func(b []byte) { ParseMemoryDetail(b, &out.Memory) }},
		{"memory", "memory.kmem.usage_in_bytes", func(b []byte) { out.Memory.KernelBytes, _ = cgfs.ParseUint(b) }},
		{"memory", "memory.max_usage_in_bytes", func(b []byte) { out.Memory.MaxUsageBytes, _ = cgfs.ParseUint(b) }},
		{"memory", "memory.failcnt", func(b []byte) { out.Memory.Failcnt, _ = cgfs.ParseUint(b) }},
		{"memory", "memory.oom_control", func(b []byte) { out.OOMKills = cgfs.KV(b, "oom_kill") }},
		{"memory", "memory.memsw.limit_in_bytes", func(b []byte) { memsw = limitV1(b) }},
		{"memory", "memory.soft_limit_in_bytes", func(b []byte) { out.Limits.ReservationBytes = limitV1(b) }},
		{"cpu", "cpu.cfs_period_us", func(b []byte) { out.Limits.CPUPeriodMicros, _ = cgfs.ParseUint(b) }},
		// -1 (no quota) does not parse: 0.
		{"cpu", "cpu.cfs_quota_us", func(b []byte) { out.Limits.CPUQuotaMicros, _ = cgfs.ParseUint(b) }},
		{"cpu", "cpu.shares", func(b []byte) { out.Limits.CPUShares, _ = cgfs.ParseUint(b) }},
		{"blkio", "blkio.throttle.io_service_bytes_recursive", func(b []byte) { io.parse(b, true) }},
		{"blkio", "blkio.throttle.io_serviced_recursive", func(b []byte) { io.parse(b, false) }},
	}
	for _, f := range each {
		b, ok, err := read(f.ctl, f.file)
		if err != nil {
			return nil, err
		}
		if ok {
			f.parse(b)
		}
	}
	// memsw is memory+swap; v2 terms (and Resources) count swap alone.
	if lim := out.Stats.Memory.LimitBytes; memsw > 0 && lim > 0 && memsw >= lim {
		out.Limits.SwapBytes = memsw - lim
	}
	out.IO = io.devices
	if out.Procs, err = m.procs(rel); err != nil {
		return nil, err
	}
	return out, nil
}

// procs lists the cgroup's processes from one hierarchy: every hierarchy
// holds every process, the pids one (else any) is as good as another.
func (m *Manager) procs(rel string) ([]int, error) {
	root := m.ctl["pids"]
	for _, r := range m.roots {
		if root != nil {
			break
		}
		if r.Exists(rel, "") {
			root = r
		}
	}
	if root == nil {
		return nil, nil
	}
	return cgfs.Procs(root, rel)
}

// limitV1 is a v1 limit file's value, 0 when it means unlimited.
func limitV1(b []byte) uint64 {
	v, ok := cgfs.ParseUint(b)
	if !ok || v >= unlimitedV1 {
		return 0
	}
	return v
}

// ParseMemoryDetail fills the page cache, mapped file and swap figures of
// d from a v1 memory.stat (the hierarchical total_* lines).
func ParseMemoryDetail(b []byte, d *cgroups.MemoryDetail) {
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "total_cache":
			d.CacheBytes = v
		case "total_mapped_file":
			d.MappedFileBytes = v
		case "total_swap":
			d.SwapBytes = v
		}
	})
}

// ioCounters gathers blkio.throttle.* files, whose lines are "MAJ:MIN Op
// value" with Op Read, Write, Sync, Async, Discard or Total, and a last
// "Total value" line.
type ioCounters struct {
	devices []cgroups.DeviceIO
}

func (c *ioCounters) parse(b []byte, isBytes bool) {
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := bytes.Cut(f[0], []byte{':'})
		if !ok {
			continue
		}
		ma, err1 := strconv.ParseUint(string(maj), 10, 32)
		mi, err2 := strconv.ParseUint(string(min), 10, 32)
		v, good := cgfs.ParseUint(f[2])
		if err1 != nil || err2 != nil || !good {
			continue
		}
		d := c.device(uint32(ma), uint32(mi))
		switch op := string(f[1]); {
		case op == "Read" && isBytes:
			d.ReadBytes = v
		case op == "Write" && isBytes:
			d.WriteBytes = v
		case op == "Read":
			d.Reads = v
		case op == "Write":
			d.Writes = v
		}
	}
}

func (c *ioCounters) device(major, minor uint32) *cgroups.DeviceIO {
	for i := range c.devices {
		if c.devices[i].Major == major && c.devices[i].Minor == minor {
			return &c.devices[i]
		}
	}
	c.devices = append(c.devices, cgroups.DeviceIO{Major: major, Minor: minor})
	return &c.devices[len(c.devices)-1]
}
