package cgroups

import (
	"math"
	"regexp"
	"strings"
	"sync"

	occgroups "github.com/opencontainers/cgroups"
)

// Max is the value of a limit that means "no limit" ("max" in v2 files, -1
// in v1 files).
const Max int64 = -1

// Resources are the limits of one cgroup in cgroup v2 terms, each with its
// unit in its name or comment. A nil pointer, empty string or empty map
// leaves the current value alone.
type Resources struct {
	// CPUWeight is cpu.weight, 1..10000 (v1: cpu.shares via WeightToShares).
	CPUWeight *uint64
	// CPUMax is cpu.max (v1: cpu.cfs_quota_us and cpu.cfs_period_us).
	CPUMax *CPUMax
	// CpusetCPUs and CpusetMems are cpuset lists such as "0-3,6".
	CpusetCPUs string
	CpusetMems string
	// MemoryMaxBytes is memory.max; Max for none.
	MemoryMaxBytes *int64
	// MemorySwapMaxBytes is memory.swap.max: swap alone, not memory+swap;
	// Max for none. Build it from a memory+swap figure with SwapFromMemsw.
	// v1 writes memory.memsw.limit_in_bytes = memory + swap.
	MemorySwapMaxBytes *int64
	// PidsMax is pids.max; Max for none.
	PidsMax *int64
	// HugetlbMaxBytes maps a page size as the kernel names it ("2MB",
	// "1GB") to hugetlb.<size>.max (v1: hugetlb.<size>.limit_in_bytes).
	HugetlbMaxBytes map[string]int64
	// Unified sets v2 interface files by name ("memory.high": "1G"). Only
	// files in the allow list below; v2 only.
	Unified map[string]string
	// BlockIO, when not nil, sets block I/O weights and throttles.
	BlockIO *BlockIO
	// Devices, when not nil, replaces the cgroup's device rules: read in
	// order as NewDeviceSet explains, deny-all when empty. v1
	// writes devices.deny and devices.allow, v2 attaches a
	// BPF_CGROUP_DEVICE program. nil leaves the device cgroup alone (a
	// pod's cgroup, a CRI update).
	Devices []DeviceRule
}

// CPUMax is a CFS bandwidth limit: QuotaMicros of CPU time per PeriodMicros.
type CPUMax struct {
	// QuotaMicros is the runtime per period in µs; Max for none.
	QuotaMicros int64
	// PeriodMicros is the period in µs; 0 keeps the current one (default
	// 100000).
	PeriodMicros uint64
}

// Kernel bounds (kernel/sched/core.c, mm/memcontrol.c, kernel/cgroup/pids.c).
const (
	minCPUWeight    = 1
	maxCPUWeight    = 10000
	minPeriodMicros = 1000
	maxPeriodMicros = 1000000
	minQuotaMicros  = 1000
	// maxLimitBytes bounds memory and hugetlb limits: beyond it the value
	// is certainly a unit mistake (the kernel rounds down to pages and
	// caps at PAGE_COUNTER_MAX anyway).
	maxLimitBytes = int64(1) << 60
	// maxPids is PID_MAX_LIMIT on 64-bit.
	maxPids = 1 << 22
)

// Validate checks r for values the kernel would refuse or that cannot be
// meant. Errors wrap errdefs.ErrInvalidArgument and name the file and value.
func (r *Resources) Validate() error {
	if r == nil {
		return nil
	}
	if w := r.CPUWeight; w != nil && (*w < minCPUWeight || *w > maxCPUWeight) {
		return Invalidf("cpu.weight %d: want %d..%d", *w, minCPUWeight, maxCPUWeight)
	}
	if c := r.CPUMax; c != nil {
		if c.QuotaMicros != Max && c.QuotaMicros < minQuotaMicros {
			return Invalidf("cpu.max quota %dµs: want -1 (max) or at least %dµs", c.QuotaMicros, minQuotaMicros)
		}
		if c.PeriodMicros != 0 && (c.PeriodMicros < minPeriodMicros || c.PeriodMicros > maxPeriodMicros) {
			return Invalidf("cpu.max period %dµs: want %d..%dµs", c.PeriodMicros, minPeriodMicros, maxPeriodMicros)
		}
	}
	if err := validCpuset("cpuset.cpus", r.CpusetCPUs); err != nil {
		return err
	}
	if err := validCpuset("cpuset.mems", r.CpusetMems); err != nil {
		return err
	}
	if err := validLimit("memory.max", r.MemoryMaxBytes, maxLimitBytes); err != nil {
		return err
	}
	if err := validLimit("memory.swap.max", r.MemorySwapMaxBytes, maxLimitBytes); err != nil {
		return err
	}
	if r.PidsMax != nil && *r.PidsMax == 0 {
		return Invalidf("pids.max 0: a cgroup that may hold no process cannot run one")
	}
	if err := validLimit("pids.max", r.PidsMax, maxPids); err != nil {
		return err
	}
	for size, v := range r.HugetlbMaxBytes {
		if !hugePageSize().MatchString(size) {
			return Invalidf("hugetlb page size %q: want a kernel size name such as 2MB or 1GB", size)
		}
		if err := validLimit("hugetlb."+size+".max", &v, maxLimitBytes); err != nil {
			return err
		}
	}
	if err := r.BlockIO.validate(); err != nil {
		return err
	}
	if r.Devices != nil {
		if _, err := NewDeviceSet(r.Devices); err != nil {
			return err
		}
	}
	for k, v := range r.Unified {
		if err := ValidUnifiedKey(k); err != nil {
			return err
		}
		if strings.ContainsAny(v, "\x00") {
			return Invalidf("unified %s value %q contains NUL", k, v)
		}
	}
	return nil
}

func validLimit(file string, v *int64, max int64) error {
	if v == nil || *v == Max {
		return nil
	}
	if *v < 0 || *v > max {
		return Invalidf("%s %d: want -1 (max) or 0..%d", file, *v, max)
	}
	return nil
}

// Compiled on first use, not at the start of every crib process.
var (
	cpusetList   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`) })
	hugePageSize = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[1-9][0-9]*[KMG]B$`) })
)

func validCpuset(file, v string) error {
	if v != "" && !cpusetList().MatchString(v) {
		return Invalidf("%s %q: want a list such as 0-3,6", file, v)
	}
	return nil
}

// unifiedFiles are the v2 interface files a Unified map may set: the
// writable resource files of the controllers crib supports. Files that act
// (cgroup.kill, memory.reclaim) or change the tree (cgroup.subtree_control,
// cgroup.procs) are not resources and stay out.
var unifiedFiles = map[string]bool{
	"cpu.weight": true, "cpu.weight.nice": true, "cpu.max": true, "cpu.max.burst": true,
	"cpu.idle": true, "cpu.uclamp.min": true, "cpu.uclamp.max": true,
	"cpuset.cpus": true, "cpuset.mems": true, "cpuset.cpus.partition": true,
	"memory.min": true, "memory.low": true, "memory.high": true, "memory.max": true,
	"memory.swap.high": true, "memory.swap.max": true, "memory.zswap.max": true,
	"memory.zswap.writeback": true, "memory.oom.group": true,
	"pids.max":  true,
	"io.weight": true, "io.max": true, "io.latency": true, "io.bfq.weight": true,
	"rdma.max": true, "misc.max": true,
	"cgroup.max.depth": true, "cgroup.max.descendants": true,
	"cpu.pressure": true, "memory.pressure": true, "io.pressure": true,
}

// ValidUnifiedKey checks a key of Resources.Unified: a known v2 resource file
// (hugetlb.<size>.max and .rsvd.max included), never a path.
func ValidUnifiedKey(k string) error {
	if strings.Contains(k, "/") || strings.Contains(k, "..") {
		return Invalidf("unified key %q: must be a file name, not a path", k)
	}
	if unifiedFiles[k] {
		return nil
	}
	if rest, ok := strings.CutPrefix(k, "hugetlb."); ok {
		size, _, _ := strings.Cut(rest, ".")
		if (rest == size+".max" || rest == size+".rsvd.max") && hugePageSize().MatchString(size) {
			return nil
		}
	}
	return Invalidf("unified key %q: not a cgroup v2 resource file crib allows", k)
}

// Controller returns the controller an interface file belongs to
// ("memory" for memory.swap.max), "" for cgroup.* core files.
func Controller(file string) string {
	c, _, _ := strings.Cut(file, ".")
	if c == "cgroup" {
		return ""
	}
	return c
}

// CPUSharesToWeight converts cgroup v1 cpu.shares (2..262144) to cgroup v2
// cpu.weight (1..10000) with the linear map the kubelet and runc's fs2 have
// long used: weight = 1 + ((shares-2)*9999)/262142. 0 stays 0 (unset).
//
// opencontainers/cgroups v0.1.0 has ConvertCPUSharesToCgroupV2Value but it
// implements the newer log-quadratic map (KEP-5474) that the kubelet does not
// assume when it computes pod weights, so crib keeps its own.
func CPUSharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// WeightToShares is the inverse of CPUSharesToWeight, used by the v1
// adapter: shares = 2 + ceil(((weight-1)*262142)/9999), rounded up so that
// converting back gives the same weight.
func WeightToShares(weight uint64) uint64 {
	if weight == 0 {
		return 0
	}
	weight = min(max(weight, 1), 10000)
	return 2 + ((weight-1)*262142+9998)/9999
}

// SwapFromMemsw converts the kubelet's memory+swap limit (v1 semantics, as in
// the OCI spec's memory.swap) into the v2 swap-only limit for memory.swap.max.
// -1 means unlimited for both arguments.
func SwapFromMemsw(memsw, memory int64) (int64, error) {
	// opencontainers/cgroups holds the conversion runc and the kubelet
	// agree on, with its edge cases (unlimited memory, unset swap).
	swap, err := occgroups.ConvertMemorySwapToCgroupV2Value(memsw, memory)
	if err != nil {
		return 0, Invalidf("memory+swap %d with memory %d: %v", memsw, memory, err)
	}
	return swap, nil
}

// MemswFromSwap is the inverse for the v1 adapter: memory + swap, -1 when
// either is unlimited.
func MemswFromSwap(swap, memory int64) int64 {
	if swap == Max || memory == Max {
		return Max
	}
	if swap > math.MaxInt64-memory {
		return Max
	}
	return memory + swap
}
