package cgroups

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	bad := []struct {
		r       Resources
		mention string
	}{
		{Resources{CPUWeight: ptr[uint64](0)}, "cpu.weight 0"},
		{Resources{CPUWeight: ptr[uint64](10001)}, "cpu.weight 10001"},
		{Resources{CPUMax: &CPUMax{QuotaMicros: 10, PeriodMicros: 100000}}, "cpu.max quota 10"},
		{Resources{CPUMax: &CPUMax{QuotaMicros: -5}}, "cpu.max quota -5"},
		{Resources{CPUMax: &CPUMax{QuotaMicros: Max, PeriodMicros: 5}}, "cpu.max period 5"},
		{Resources{CpusetCPUs: "0-3;rm"}, "cpuset.cpus"},
		{Resources{CpusetMems: "a"}, "cpuset.mems"},
		{Resources{MemoryMaxBytes: ptr[int64](-2)}, "memory.max -2"},
		{Resources{MemoryMaxBytes: ptr[int64](1 << 62)}, "memory.max"},
		{Resources{MemorySwapMaxBytes: ptr[int64](-7)}, "memory.swap.max -7"},
		{Resources{PidsMax: ptr[int64](0)}, "pids.max 0"},
		{Resources{PidsMax: ptr[int64](1 << 40)}, "pids.max"},
		{Resources{HugetlbMaxBytes: map[string]int64{"2M": 1}}, `"2M"`},
		{Resources{HugetlbMaxBytes: map[string]int64{"2MB": -3}}, "hugetlb.2MB.max -3"},
		{Resources{Unified: map[string]string{"memory.bogus": "1"}}, `"memory.bogus"`},
		{Resources{Unified: map[string]string{"../cpu.max": "1"}}, "not a path"},
		{Resources{Unified: map[string]string{"x/cpu.max": "1"}}, "not a path"},
		{Resources{Unified: map[string]string{"cgroup.procs": "1"}}, `"cgroup.procs"`},
		{Resources{Unified: map[string]string{"memory.high": "1\x00"}}, "NUL"},
	}
	for _, tc := range bad {
		err := tc.r.Validate()
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Validate(%+v) = %v; want InvalidArgument mentioning %q", tc.r, err, tc.mention)
		}
	}
	good := Resources{
		CPUWeight: ptr[uint64](100), CPUMax: &CPUMax{QuotaMicros: 50000, PeriodMicros: 100000},
		CpusetCPUs: "0-1,3", CpusetMems: "0", MemoryMaxBytes: ptr[int64](64 << 20),
		MemorySwapMaxBytes: ptr(Max), PidsMax: ptr[int64](100),
		HugetlbMaxBytes: map[string]int64{"2MB": 0, "1GB": Max},
		Unified:         map[string]string{"memory.high": "max", "hugetlb.2MB.rsvd.max": "0", "memory.oom.group": "1"},
	}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	if err := (*Resources)(nil).Validate(); err != nil {
		t.Errorf("nil Validate = %v", err)
	}
}

func TestConversions(t *testing.T) {
	for _, tc := range []struct{ shares, weight uint64 }{
		{0, 0}, {2, 1}, {1, 1}, {1024, 39}, {262144, 10000}, {1 << 30, 10000}, {512, 20},
	} {
		if got := CPUSharesToWeight(tc.shares); got != tc.weight {
			t.Errorf("CPUSharesToWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
	}
	for _, w := range []uint64{1, 39, 100, 5000, 10000} {
		if back := CPUSharesToWeight(WeightToShares(w)); back != w {
			t.Errorf("weight %d → shares %d → weight %d", w, WeightToShares(w), back)
		}
	}
	for _, tc := range []struct{ memsw, mem, swap int64 }{
		{200, 100, 100}, {100, 100, 0}, {Max, 100, Max}, {0, Max, Max}, {300, Max, 300},
	} {
		got, err := SwapFromMemsw(tc.memsw, tc.mem)
		if err != nil || got != tc.swap {
			t.Errorf("SwapFromMemsw(%d, %d) = %d, %v; want %d", tc.memsw, tc.mem, got, err, tc.swap)
		}
	}
	if _, err := SwapFromMemsw(50, 100); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("memsw below memory: %v", err)
	}
	if MemswFromSwap(100, 100) != 200 || MemswFromSwap(Max, 100) != Max || MemswFromSwap(0, Max) != Max {
		t.Errorf("MemswFromSwap is wrong")
	}
	if Controller("memory.swap.max") != "memory" || Controller("cgroup.procs") != "" {
		t.Errorf("Controller is wrong")
	}
}
