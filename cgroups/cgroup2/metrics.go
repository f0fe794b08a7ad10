package cgroup2

import (
	"bytes"
	"strconv"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Metrics implements cgroups.Manager: Stats, then the memory, limit, io
// and pid files only the metrics report.
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
	read := func(file string) ([]byte, bool, error) { return m.root.ReadOptional(rel, file, &buf) }
	each := []struct {
		file  string
		parse func([]byte)
	}{
		{"memory.stat", func(b []byte) { ParseMemoryDetail(b, &out.Memory) }},
		{"memory.swap.current", func(b []byte) { out.Memory.SwapBytes, _ = cgfs.ParseUint(b) }},
		{"memory.peak", func(b []byte) { out.Memory.MaxUsageBytes, _ = cgfs.ParseUint(b) }},
		{"memory.events", func(b []byte) {
			out.Memory.Failcnt, out.OOMKills = cgfs.KV(b, "max"), cgfs.KV(b, "oom_kill")
		}},
		{"memory.swap.max", func(b []byte) { out.Limits.SwapBytes = limitValue(b) }},
		{"memory.min", func(b []byte) { out.Limits.ReservationBytes, _ = cgfs.ParseUint(b) }},
		{"cpu.max", func(b []byte) { out.Limits.CPUQuotaMicros, out.Limits.CPUPeriodMicros = ParseCPUMax(b) }},
		{"cpu.weight", func(b []byte) {
			if w, ok := cgfs.ParseUint(b); ok {
				out.Limits.CPUShares = cgroups.WeightToShares(w)
			}
		}},
		{"io.stat", func(b []byte) { out.IO = ParseIOStat(b) }},
	}
	for _, f := range each {
		b, ok, err := read(f.file)
		if err != nil {
			return nil, err
		}
		if ok {
			f.parse(b)
		}
	}
	if out.Procs, err = cgfs.Procs(m.root, rel); err != nil {
		return nil, err
	}
	return out, nil
}

// limitValue is a v2 limit file's value, 0 for "max".
func limitValue(b []byte) uint64 {
	v, limited, ok := cgfs.ParseLimit(b)
	if !ok || !limited {
		return 0
	}
	return v
}

// ParseMemoryDetail fills the page cache, mapped file and kernel figures of
// d from memory.stat. Kernels before 5.18 have no "kernel" line; its parts
// are summed instead.
func ParseMemoryDetail(b []byte, d *cgroups.MemoryDetail) {
	var kernel, parts uint64
	hasKernel := false
	cgfs.EachKV(b, func(k []byte, v uint64) {
		switch string(k) {
		case "file":
			d.CacheBytes = v
		case "file_mapped":
			d.MappedFileBytes = v
		case "kernel":
			kernel, hasKernel = v, true
		case "kernel_stack", "pagetables", "percpu", "sock", "slab":
			parts += v
		}
	})
	d.KernelBytes = parts
	if hasKernel {
		d.KernelBytes = kernel
	}
}

// ParseCPUMax parses cpu.max ("$MAX $PERIOD", MAX "max" for no quota)
// into a quota (0 for none) and a period, in µs.
func ParseCPUMax(b []byte) (quota, period uint64) {
	f := bytes.Fields(b)
	if len(f) != 2 {
		return 0, 0
	}
	quota, _ = cgfs.ParseUint(f[0]) // "max" does not parse: 0
	period, _ = cgfs.ParseUint(f[1])
	return quota, period
}

// ParseIOStat parses io.stat: one line per device, "MAJ:MIN rbytes=… wbytes=…
// rios=… wios=… dbytes=… dios=…" (more keys with io.cost or latency on).
func ParseIOStat(b []byte) []cgroups.DeviceIO {
	var out []cgroups.DeviceIO
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		maj, min, ok := bytes.Cut(f[0], []byte{':'})
		if !ok {
			continue
		}
		var d cgroups.DeviceIO
		ma, err1 := strconv.ParseUint(string(maj), 10, 32)
		mi, err2 := strconv.ParseUint(string(min), 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		d.Major, d.Minor = uint32(ma), uint32(mi)
		for _, kv := range f[1:] {
			k, v, ok := bytes.Cut(kv, []byte{'='})
			if !ok {
				continue
			}
			n, _ := cgfs.ParseUint(v)
			switch string(k) {
			case "rbytes":
				d.ReadBytes = n
			case "wbytes":
				d.WriteBytes = n
			case "rios":
				d.Reads = n
			case "wios":
				d.Writes = n
			}
		}
		out = append(out, d)
	}
	return out
}
