package cgroup1_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup1"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

func ptr[T any](v T) *T { return &v }

func newFake(t *testing.T, hybrid bool, hierarchies ...string) (*cgroupstest.Tree, *cgroup1.Manager) {
	t.Helper()
	tr := cgroupstest.NewV1(t, hierarchies...)
	if hybrid {
		tr = cgroupstest.NewHybrid(t, hierarchies...)
	}
	host, err := cgroups.Detect(tr.Mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	want := cgroups.ModeLegacy
	if hybrid {
		want = cgroups.ModeHybrid
	}
	if host.Mode != want {
		t.Fatalf("mode %s, want %s", host.Mode, want)
	}
	m, err := cgroup1.New(host, cgroup1.WithFake(tr.Fake))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return tr, m
}

var hier = []string{"cpu,cpuacct", "cpuset", "memory", "pids", "freezer", "hugetlb", "name=systemd"}

func TestCreateWritesEveryFile(t *testing.T) {
	for _, hybrid := range []bool{false, true} {
		tr, m := newFake(t, hybrid, hier...)
		const c = "/kubepods/pod1/c1"
		r := &cgroups.Resources{
			CPUWeight: ptr[uint64](39), CPUMax: &cgroups.CPUMax{QuotaMicros: 50000, PeriodMicros: 100000},
			CpusetCPUs: "1", MemoryMaxBytes: ptr[int64](64 << 20), MemorySwapMaxBytes: ptr[int64](16 << 20),
			PidsMax: ptr[int64](64), HugetlbMaxBytes: map[string]int64{"2MB": 2 << 20},
		}
		if err := m.Create(c, r); err != nil {
			t.Fatal(err)
		}
		for _, x := range []struct{ h, file, want string }{
			// Weight 39 is what the kubelet's 1024 shares become;
			// back in v1 it is 999 (the map is lossy by < 27 shares).
			{"cpu,cpuacct", "cpu.shares", "999"},
			{"cpu,cpuacct", "cpu.cfs_quota_us", "50000"},
			{"cpu,cpuacct", "cpu.cfs_period_us", "100000"},
			{"cpuset", "cpuset.cpus", "1"},
			{"cpuset", "cpuset.mems", "0"}, // inherited: a new v1 cpuset is empty
			{"memory", "memory.limit_in_bytes", "67108864"},
			{"memory", "memory.memsw.limit_in_bytes", "83886080"},
			{"pids", "pids.max", "64"},
			{"hugetlb", "hugetlb.2MB.limit_in_bytes", "2097152"},
		} {
			if got := tr.Read(tr.V1[x.h], c, x.file); got != x.want {
				t.Errorf("hybrid=%v %s = %q, want %q", hybrid, x.file, got, x.want)
			}
		}
		for h, mnt := range tr.V1 {
			if !tr.Exists(mnt, c) {
				t.Errorf("%s not created in %s", c, h)
			}
		}
		if err := m.AddProc(c, 4242); err != nil {
			t.Fatal(err)
		}
		for h, mnt := range tr.V1 {
			if got := tr.Read(mnt, c, "cgroup.procs"); got != "4242" {
				t.Errorf("%s cgroup.procs = %q", h, got)
			}
			tr.Write(mnt, c, "cgroup.procs", "")
		}
		if err := m.Remove("/kubepods"); err != nil {
			t.Fatal(err)
		}
		if got := tr.Read(tr.V1["freezer"], "/", "freezer.state"); got != "THAWED" {
			t.Errorf("root freezer touched: %q", got)
		}
		for h, mnt := range tr.V1 {
			if tr.Exists(mnt, "/kubepods") {
				t.Errorf("/kubepods left in %s", h)
			}
		}
	}
}

func TestMemoryOrder(t *testing.T) {
	tr, m := newFake(t, false, hier...)
	const c = "/p/c"
	mem := tr.V1["memory"]
	if err := m.Create(c, &cgroups.Resources{MemoryMaxBytes: ptr[int64](100), MemorySwapMaxBytes: ptr[int64](0)}); err != nil {
		t.Fatal(err)
	}
	// Growing: memsw must be raised first. The fake cannot refuse like
	// the kernel, so check the order through a missing memsw file: a
	// growing update must fail before memory moves.
	tr.Remove(mem, c, "memory.memsw.limit_in_bytes")
	err := m.Update(c, &cgroups.Resources{MemoryMaxBytes: ptr[int64](1000), MemorySwapMaxBytes: ptr[int64](5)})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "memory.memsw.limit_in_bytes") {
		t.Fatalf("update without memsw = %v", err)
	}
	if got := tr.Read(mem, c, "memory.limit_in_bytes"); got != "100" {
		t.Errorf("memory moved to %s before memsw failed", got)
	}
}

func TestBadInput(t *testing.T) {
	tr, m := newFake(t, true, "cpu,cpuacct", "memory", "pids", "freezer")
	for _, tc := range []struct {
		r       *cgroups.Resources
		mention string
	}{
		{&cgroups.Resources{Unified: map[string]string{"memory.high": "1"}}, "need cgroup v2"},
		{&cgroups.Resources{CpusetCPUs: "0"}, "cpuset controller"},
		{&cgroups.Resources{MemoryMaxBytes: ptr[int64](-9)}, "memory.max -9"},
	} {
		err := m.Create("/t/x", tc.r)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Create(%+v) = %v; want InvalidArgument mentioning %q", tc.r, err, tc.mention)
		}
		for _, mnt := range tr.V1 {
			if tr.Exists(mnt, "/t") {
				t.Errorf("left /t in %s", mnt)
			}
		}
	}
	// A failing write rolls back every hierarchy.
	if err := m.Create("/t/x", &cgroups.Resources{CPUMax: &cgroups.CPUMax{QuotaMicros: 5000, PeriodMicros: 10000}}); err != nil {
		t.Fatal(err)
	}
	tr.Remove(tr.V1["pids"], "/t/x", "pids.max")
	if err := m.Update("/t/x", &cgroups.Resources{PidsMax: ptr[int64](3)}); !errors.Is(err, errdefs.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), `write pids.max for /t/x (value "3")`) {
		t.Errorf("write to missing file: %v", err)
	}
}

func TestStatsAndOOM(t *testing.T) {
	tr, m := newFake(t, false, hier...)
	const c = "/p/c"
	if err := m.Create(c, nil); err != nil {
		t.Fatal(err)
	}
	cpu, mem, pids := tr.V1["cpu,cpuacct"], tr.V1["memory"], tr.V1["pids"]
	tr.Write(cpu, c, "cpuacct.usage", "123456789\n")
	tr.Write(cpu, c, "cpuacct.stat", "user 10\nsystem 2\n")
	tr.Write(cpu, c, "cpu.stat", "nr_periods 7\nnr_throttled 1\nthrottled_time 999\n")
	tr.Write(mem, c, "memory.usage_in_bytes", "5000000\n")
	tr.Write(mem, c, "memory.limit_in_bytes", "8000000\n")
	tr.Write(mem, c, "memory.stat", "cache 1\nrss 2\ntotal_rss 3000000\ntotal_inactive_file 1000000\ntotal_pgfault 50\ntotal_pgmajfault 5\ninactive_file 9\n")
	tr.Write(mem, c, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
	tr.Write(pids, c, "pids.current", "4\n")
	tr.Write(pids, c, "pids.max", "100\n")
	s, err := m.Stats(c)
	if err != nil {
		t.Fatal(err)
	}
	s.Timestamp = s.Timestamp.UTC().Truncate(0)
	want := &cgroups.Stats{
		Timestamp: s.Timestamp,
		CPU:       cgroups.CPUStats{UsageNanos: 123456789, UserNanos: 100000000, SystemNanos: 20000000, Periods: 7, ThrottledPeriods: 1, ThrottledNanos: 999},
		Memory:    cgroups.MemoryStats{UsageBytes: 5000000, WorkingSetBytes: 4000000, RSSBytes: 3000000, PageFaults: 50, MajorPageFaults: 5, LimitBytes: 8000000, AvailableBytes: 4000000},
		Pids:      cgroups.PidsStats{Current: 4, Limit: 100},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if n, err := m.OOMKills(c); err != nil || n != 3 {
		t.Errorf("OOMKills = %d, %v", n, err)
	}
	// Unlimited shows as 0.
	tr.Write(mem, c, "memory.limit_in_bytes", "9223372036854771712\n")
	if s, _ := m.Stats(c); s.Memory.LimitBytes != 0 || s.Memory.AvailableBytes != 0 {
		t.Errorf("unlimited: %+v", s.Memory)
	}
}

// The kubelet sends hugetlb limits on every container, also where the host
// has no hugetlb controller (this project's v1 hosts): they are skipped and
// reported once, not refused.
func TestHugetlbSkippedWithoutController(t *testing.T) {
	tr := cgroupstest.NewHybrid(t, "cpu,cpuacct", "cpuset", "memory", "pids", "freezer")
	host, err := cgroups.Detect(tr.Mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	var skipped []cgroups.Skipped
	m, err := cgroup1.New(host, cgroup1.WithFake(tr.Fake), cgroup1.WithSkipped(func(s cgroups.Skipped) { skipped = append(skipped, s) }))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	kubelet := func() *cgroups.Resources {
		return &cgroups.Resources{CPUWeight: ptr[uint64](1), CPUMax: &cgroups.CPUMax{QuotaMicros: cgroups.Max, PeriodMicros: 100000},
			HugetlbMaxBytes: map[string]int64{"2MB": 0, "1GB": 0}}
	}
	for _, c := range []string{"/kubepods/besteffort/pod1/c1", "/kubepods/besteffort/pod1/c2"} {
		if err := m.Create(c, kubelet()); err != nil {
			t.Fatalf("Create(%s) with the kubelet's hugetlb limits: %v", c, err)
		}
		if got := tr.Read(tr.V1["cpu,cpuacct"], c, "cpu.shares"); got != "2" {
			t.Errorf("%s cpu.shares = %q; the rest of the resources must still apply", c, got)
		}
	}
	if err := m.Update("/kubepods/besteffort/pod1/c1", kubelet()); err != nil {
		t.Fatalf("Update with the kubelet's hugetlb limits: %v", err)
	}
	want := []cgroups.Skipped{{Controller: "hugetlb", Cgroup: "/kubepods/besteffort/pod1/c1",
		Files:  []string{"hugetlb.1GB.max=0", "hugetlb.2MB.max=0"},
		Reason: "the hugetlb controller is not mounted on this cgroup v1 host"}}
	if diff := cmp.Diff(want, skipped); diff != "" {
		t.Errorf("skip notices (-want +got):\n%s", diff)
	}
}

// A parent that someone else made with a plain mkdir has an empty cpuset;
// every level below it, and it, take the cpus and mems of the nearest
// ancestor that has them, or the kernel refuses the container's tasks.
func TestCpusetFromNearestAncestor(t *testing.T) {
	tr, m := newFake(t, false, hier...)
	cs := tr.V1["cpuset"]
	for _, mnt := range tr.V1 { // someone else's cgroups, by plain mkdir
		for _, cg := range []string{"/foreign", "/foreign/empty"} {
			if err := tr.Fake.Mkdir(cgroupstest.Path(mnt, cg)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := tr.Read(cs, "/foreign/empty", "cpuset.cpus"); got != "" {
		t.Fatalf("fake mkdir made cpuset.cpus %q; want empty, as the kernel does", got)
	}
	if err := m.Create("/foreign/empty/pod/c1", nil); err != nil {
		t.Fatal(err)
	}
	for _, cg := range []string{"/foreign", "/foreign/empty", "/foreign/empty/pod", "/foreign/empty/pod/c1"} {
		if cpus, mems := tr.Read(cs, cg, "cpuset.cpus"), tr.Read(cs, cg, "cpuset.mems"); cpus != "0-1" || mems != "0" {
			t.Errorf("%s cpuset cpus %q mems %q; want the root's 0-1 and 0", cg, cpus, mems)
		}
	}
	// An ancestor's own cpus are kept and passed down; the mems it lacks
	// come from above.
	if err := tr.Fake.Mkdir(cgroupstest.Path(cs, "/other")); err != nil {
		t.Fatal(err)
	}
	tr.Write(cs, "/other", "cpuset.cpus", "1\n")
	if err := m.Create("/other/pod/c2", nil); err != nil {
		t.Fatal(err)
	}
	for _, cg := range []string{"/other", "/other/pod", "/other/pod/c2"} {
		if cpus, mems := tr.Read(cs, cg, "cpuset.cpus"), tr.Read(cs, cg, "cpuset.mems"); cpus != "1" || mems != "0" {
			t.Errorf("%s cpuset cpus %q mems %q; want 1 (from /other) and 0 (from the root)", cg, cpus, mems)
		}
	}
}
