package cgroup2_test

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup2"
)

func TestMetrics(t *testing.T) {
	tr, m := newFake(t, all...)
	const pod, c = "/p", "/p/c"
	if err := m.Create(c, nil); err != nil {
		t.Fatal(err)
	}
	u := tr.Unified
	tr.Write(u, c, "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\n")
	tr.Write(u, c, "cpu.max", "20000 100000\n")
	tr.Write(u, c, "cpu.weight", "39\n")
	tr.Write(u, c, "memory.current", "10000000\n")
	tr.Write(u, c, "memory.max", "67108864\n")
	tr.Write(u, c, "memory.swap.max", "1048576\n")
	tr.Write(u, c, "memory.swap.current", "4096\n")
	tr.Write(u, c, "memory.peak", "12000000\n")
	tr.Write(u, c, "memory.min", "8192\n")
	tr.Write(u, c, "memory.stat", "anon 6000000\nfile 4000000\nkernel 300000\nkernel_stack 1\nfile_mapped 200000\ninactive_file 3000000\npgfault 77\npgmajfault 3\n")
	tr.Write(u, c, "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n")
	tr.Write(u, c, "io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.usage=7\n")
	tr.Write(u, pod, "cgroup.procs", "10\n")
	tr.Write(u, c, "cgroup.procs", "11\n12\n")

	got, err := m.Metrics(pod + "/c/")
	if err != nil {
		t.Fatal(err)
	}
	want := cgroups.Metrics{
		Memory: cgroups.MemoryDetail{CacheBytes: 4000000, MappedFileBytes: 200000, KernelBytes: 300000,
			SwapBytes: 4096, MaxUsageBytes: 12000000, Failcnt: 4},
		Limits: cgroups.Limits{CPUPeriodMicros: 100000, CPUQuotaMicros: 20000, CPUShares: cgroups.WeightToShares(39),
			SwapBytes: 1048576, ReservationBytes: 8192},
		IO: []cgroups.DeviceIO{{Major: 8, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2},
			{Major: 253, Minor: 1, ReadBytes: 1, WriteBytes: 2, Reads: 3, Writes: 4}},
		Procs:    []int{11, 12},
		OOMKills: 1,
	}
	if got.Stats.CPU.UsageNanos != 1500000 || got.Stats.Memory.UsageBytes != 10000000 {
		t.Errorf("Stats not read: %+v", got.Stats)
	}
	got.Stats = cgroups.Stats{}
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("Metrics (-want +got):\n%s", diff)
	}

	// The pod's processes are its own and its containers'.
	pm, err := m.Metrics(pod)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{10, 11, 12}, pm.Procs); diff != "" {
		t.Errorf("pod procs (-want +got):\n%s", diff)
	}

	// No quota, no swap limit, an older kernel without memory.peak and
	// the kernel line: the parts are summed.
	tr.Write(u, c, "cpu.max", "max 100000\n")
	tr.Write(u, c, "memory.swap.max", "max\n")
	tr.Remove(u, c, "memory.peak")
	tr.Write(u, c, "memory.stat", "kernel_stack 1\npagetables 2\npercpu 4\nsock 8\nslab 16\n")
	got, err = m.Metrics(c)
	if err != nil {
		t.Fatal(err)
	}
	if l := got.Limits; l.CPUQuotaMicros != 0 || l.CPUPeriodMicros != 100000 || l.SwapBytes != 0 {
		t.Errorf("unlimited: %+v", l)
	}
	if got.Memory.MaxUsageBytes != 0 || got.Memory.KernelBytes != 31 {
		t.Errorf("old kernel: %+v", got.Memory)
	}

	if _, err := m.Metrics("/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Metrics(missing) = %v", err)
	}
}

func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string][2]uint64{
		"max 100000\n": {0, 100000}, "50000 200000": {50000, 200000}, "": {0, 0}, "1 2 3": {0, 0},
	} {
		q, p := cgroup2.ParseCPUMax([]byte(in))
		if q != want[0] || p != want[1] {
			t.Errorf("ParseCPUMax(%q) = %d, %d; want %v", in, q, p, want)
		}
	}
}
