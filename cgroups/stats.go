package cgroups

import "time"

// Stats are the counters of one cgroup at Timestamp, in the units the CRI's
// ContainerStats wants (ns, bytes, counts).
type Stats struct {
	// Timestamp is when the CPU counter was read.
	Timestamp time.Time
	CPU       CPUStats
	Memory    MemoryStats
	Pids      PidsStats
	// PSI is nil where the kernel has no pressure files for the cgroup
	// (v1, or CONFIG_PSI off).
	PSI *PSIStats
}

// CPUStats are cumulative CPU counters.
type CPUStats struct {
	UsageNanos  uint64
	UserNanos   uint64
	SystemNanos uint64
	// Throttling of the CFS bandwidth limit (cpu.max).
	Periods          uint64
	ThrottledPeriods uint64
	ThrottledNanos   uint64
}

// MemoryStats follow the kubelet's definitions (pkg/kubelet/stats).
type MemoryStats struct {
	// UsageBytes is memory.current (v1 memory.usage_in_bytes).
	UsageBytes uint64
	// WorkingSetBytes is usage minus inactive_file (v1:
	// total_inactive_file), floored at 0: what the kubelet evicts on.
	WorkingSetBytes uint64
	// RSSBytes is anon (v1: total_rss).
	RSSBytes uint64
	// PageFaults and MajorPageFaults are pgfault and pgmajfault.
	PageFaults      uint64
	MajorPageFaults uint64
	// LimitBytes is memory.max; 0 when unlimited.
	LimitBytes uint64
	// AvailableBytes is LimitBytes - WorkingSetBytes (floored at 0) when
	// limited, 0 otherwise.
	AvailableBytes uint64
}

// PidsStats count tasks.
type PidsStats struct {
	Current uint64
	// Limit is pids.max; 0 when unlimited.
	Limit uint64
}

// PSIStats are the cgroup's pressure stall figures (cpu, memory, io.pressure).
type PSIStats struct {
	CPU    PSIData
	Memory PSIData
	IO     PSIData
}

// PSIData is one pressure file: "some" and "full" lines.
type PSIData struct {
	Some PSILine
	Full PSILine
}

// PSILine is one line of a pressure file: averages in percent over 10, 60
// and 300 seconds, and the total stall time in µs.
type PSILine struct {
	Avg10, Avg60, Avg300 float64
	TotalMicros          uint64
}

// FinishMemory derives WorkingSetBytes and AvailableBytes from the raw
// figures, as the kubelet does (pkg/kubelet/stats/helper.go,
// cadvisor's setMemoryStats).
func (m *MemoryStats) FinishMemory(inactiveFile uint64) {
	m.WorkingSetBytes = 0
	if m.UsageBytes > inactiveFile {
		m.WorkingSetBytes = m.UsageBytes - inactiveFile
	}
	m.AvailableBytes = 0
	if m.LimitBytes > m.WorkingSetBytes {
		m.AvailableBytes = m.LimitBytes - m.WorkingSetBytes
	}
}
