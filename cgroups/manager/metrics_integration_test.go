package manager_test

import (
	"slices"
	"testing"
	"time"

	"github.com/crib-runtime/crib/cgroups"
)

// TestHostMetrics reads back through Metrics what the kernel's files say
// for a cgroup with limits and a workload in it: the limits as they were
// set (in v2 terms on either hierarchy), the workload as the cgroup's
// only process and the pod's, its memory.
func TestHostMetrics(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	pod, c := root+"/pod", root+"/pod/c"
	if err := m.Create(pod, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(c, &cgroups.Resources{CPUWeight: ptr[uint64](50),
		CPUMax:         &cgroups.CPUMax{QuotaMicros: 20000, PeriodMicros: 100000},
		MemoryMaxBytes: ptr[int64](64 << 20), MemorySwapMaxBytes: ptr[int64](16 << 20), PidsMax: ptr[int64](32)}); err != nil {
		t.Fatal(err)
	}
	h := startHelper(t, m, c, 8)
	var got *cgroups.Metrics
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if got, err = m.Metrics(c); err != nil {
			t.Fatal(err)
		}
		if got.Stats.Memory.UsageBytes >= 8<<20 && got.Stats.CPU.UsageNanos > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("metrics: %+v", *got)
	want := cgroups.Limits{CPUPeriodMicros: 100000, CPUQuotaMicros: 20000, CPUShares: cgroups.WeightToShares(50), SwapBytes: 16 << 20}
	if got.Limits != want {
		t.Errorf("limits %+v, want %+v", got.Limits, want)
	}
	pid := h.cmd.Process.Pid
	if !slices.Equal(got.Procs, []int{pid}) {
		t.Errorf("procs %v, want [%d]", got.Procs, pid)
	}
	if s := got.Stats; s.Memory.LimitBytes != 64<<20 || s.Pids.Limit != 32 || s.Memory.UsageBytes < 8<<20 {
		t.Errorf("stats %+v", s)
	}
	// The peak is at least the usage where the kernel keeps one (v1, and
	// v2 from Linux 5.19); the counters of a workload that fits are 0.
	if mem := got.Memory; mem.MaxUsageBytes != 0 && mem.MaxUsageBytes < got.Stats.Memory.UsageBytes || mem.Failcnt != 0 || got.OOMKills != 0 {
		t.Errorf("memory %+v, oom kills %d", mem, got.OOMKills)
	}
	pm, err := m.Metrics(pod)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pm.Procs, pid) || pm.Limits.CPUQuotaMicros != 0 {
		t.Errorf("pod: procs %v, limits %+v", pm.Procs, pm.Limits)
	}
}
