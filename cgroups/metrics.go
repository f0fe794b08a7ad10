package cgroups

// Metrics are a cgroup's Stats plus what the kubelet's cAdvisor-style
// metrics (CRI ListPodSandboxMetrics) report beyond the CRI stats: the rest
// of the memory accounting, the limits in force, block I/O and the pids.
// Reading them costs a dozen more files than Stats, so only the metrics
// path pays for them.
type Metrics struct {
	Stats Stats
	// Memory are the memory figures Stats leaves out.
	Memory MemoryDetail
	// Limits are the limits the cgroup's files hold now (after any update).
	Limits Limits
	// IO is the block I/O of the cgroup and below, per device; empty
	// without the io (v1: blkio) controller or before any I/O.
	IO []DeviceIO
	// Procs are the processes (thread group ids, as the caller's pid
	// namespace sees them) in the cgroup and below.
	Procs []int
	// OOMKills is what Manager.OOMKills reports.
	OOMKills uint64
}

// MemoryDetail are memory figures in bytes (Failcnt a count), from
// memory.stat and the memory controller's other files.
type MemoryDetail struct {
	// CacheBytes is the page cache: file (v1: total_cache).
	CacheBytes uint64
	// MappedFileBytes is file_mapped (v1: total_mapped_file).
	MappedFileBytes uint64
	// KernelBytes is kernel memory: memory.stat's kernel (Linux 5.18;
	// before it the sum of kernel_stack, pagetables, percpu, sock and
	// slab); v1: memory.kmem.usage_in_bytes, 0 where the kernel has no
	// kmem files.
	KernelBytes uint64
	// SwapBytes is swap in use: memory.swap.current (v1: total_swap, 0
	// without swap accounting).
	SwapBytes uint64
	// MaxUsageBytes is the peak usage: memory.peak (Linux 5.19, else 0);
	// v1: memory.max_usage_in_bytes.
	MaxUsageBytes uint64
	// Failcnt counts the times usage hit the limit: memory.events' max
	// (v1: memory.failcnt).
	Failcnt uint64
}

// Limits are a cgroup's limits; 0 means none (unlimited, or the file is
// absent because the controller is).
type Limits struct {
	// CPUPeriodMicros and CPUQuotaMicros are cpu.max (v1:
	// cpu.cfs_period_us, cpu.cfs_quota_us); the quota is 0 when "max".
	CPUPeriodMicros uint64
	CPUQuotaMicros  uint64
	// CPUShares is cpu.shares on v1, and cpu.weight turned back into
	// shares (WeightToShares) on v2, as cAdvisor reports it.
	CPUShares uint64
	// SwapBytes is memory.swap.max: swap alone, as Resources has it (v1:
	// memory.memsw.limit_in_bytes minus memory.limit_in_bytes).
	SwapBytes uint64
	// ReservationBytes is memory.min (v1: memory.soft_limit_in_bytes),
	// what cAdvisor reports as the reservation.
	ReservationBytes uint64
}

// DeviceIO is the block I/O of one device, cumulative.
type DeviceIO struct {
	Major, Minor uint32
	// ReadBytes and WriteBytes are rbytes/wbytes of io.stat (v1:
	// blkio.throttle.io_service_bytes_recursive's Read and Write).
	ReadBytes, WriteBytes uint64
	// Reads and Writes are rios/wios (v1: blkio.throttle.io_serviced_recursive).
	Reads, Writes uint64
}
