package cgroup2_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup2"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

func ptr[T any](v T) *T { return &v }

func newFake(t *testing.T, controllers ...string) (*cgroupstest.Tree, *cgroup2.Manager) {
	t.Helper()
	tr := cgroupstest.NewV2(t, controllers...)
	m, err := cgroup2.New(tr.Unified, cgroup2.WithFake(tr.Fake))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return tr, m
}

var all = []string{"cpuset", "cpu", "io", "memory", "hugetlb", "pids"}

func TestCreateWritesEveryFile(t *testing.T) {
	tr, m := newFake(t, all...)
	r := &cgroups.Resources{
		CPUWeight:          ptr[uint64](39),
		CPUMax:             &cgroups.CPUMax{QuotaMicros: 50000, PeriodMicros: 100000},
		CpusetCPUs:         "0-1",
		CpusetMems:         "0",
		MemoryMaxBytes:     ptr[int64](64 << 20),
		MemorySwapMaxBytes: ptr[int64](0),
		PidsMax:            ptr[int64](64),
		HugetlbMaxBytes:    map[string]int64{"2MB": 4 << 20, "1GB": cgroups.Max},
		Unified:            map[string]string{"memory.high": "60000000", "memory.oom.group": "1"},
	}
	if err := m.Create("/kubepods/burstable/pod1", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Create("/kubepods/burstable/pod1/c1", r); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu.weight": "39", "cpu.max": "50000 100000", "cpuset.cpus": "0-1", "cpuset.mems": "0",
		"memory.max": "67108864", "memory.swap.max": "0", "pids.max": "64",
		"hugetlb.2MB.max": "4194304", "hugetlb.1GB.max": "max",
		"memory.high": "60000000", "memory.oom.group": "1",
	}
	for f, v := range want {
		if got := tr.Read(tr.Unified, "/kubepods/burstable/pod1/c1", f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	// Each ancestor enables what the leaf needs, writing only what is
	// missing (the fake keeps the last write; the kernel accumulates):
	// the defaults came with the pod's Create, cpuset and hugetlb with the
	// container's. The leaf enables nothing (no internal processes).
	for cg, want := range map[string]string{
		"/": "+cpuset +hugetlb", "/kubepods/burstable": "+cpuset +hugetlb",
		"/kubepods/burstable/pod1": "+cpu +cpuset +memory +pids +hugetlb",
	} {
		if got := tr.Read(tr.Unified, cg, "cgroup.subtree_control"); got != want {
			t.Errorf("%s: last subtree_control write %q, want %q", cg, got, want)
		}
	}
	if got := tr.Read(tr.Unified, "/kubepods/burstable/pod1/c1", "cgroup.subtree_control"); got != "" {
		t.Errorf("leaf subtree_control = %q, want empty", got)
	}
}

func TestCreateRollsBackAndClassifies(t *testing.T) {
	tests := []struct {
		name    string
		ctl     []string
		path    string
		r       *cgroups.Resources
		kind    error
		mention string
	}{
		{"controller missing on host", []string{"cpu", "memory", "pids"}, "/t/a/b",
			&cgroups.Resources{CpusetCPUs: "0"}, errdefs.ErrInvalidArgument, "controller cpuset"},
		{"unknown unified key", all, "/t/a/b",
			&cgroups.Resources{Unified: map[string]string{"memory.nope": "1"}}, errdefs.ErrInvalidArgument, "memory.nope"},
		{"escaping path", all, "/t/../../b", nil, errdefs.ErrInvalidArgument, "escapes"},
		{"negative value", all, "/t/a/b", &cgroups.Resources{PidsMax: ptr[int64](-3)}, errdefs.ErrInvalidArgument, "pids.max -3"},
		{"the kernel refuses a file", all, "/t/a/b",
			&cgroups.Resources{Unified: map[string]string{"io.max": "x"}}, errdefs.ErrInvalidArgument, `io.max for /t/a/b (value "x")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, m := newFake(t, tc.ctl...)
			if tc.name == "the kernel refuses a file" {
				// A fake file that cannot be written stands in
				// for EINVAL: make io.max a directory.
				tr.Fake.Mkdir = wrapMkdirBreak(tr.Fake.Mkdir, "io.max")
			}
			err := m.Create(tc.path, tc.r)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Create = %v; want %v mentioning %q", err, tc.kind, tc.mention)
			}
			if tr.Exists(tr.Unified, "/t") {
				t.Errorf("Create left /t behind")
			}
		})
	}
}

// The kubelet sends hugetlb limits on every container, also where the
// hierarchy offers no hugetlb controller: they are skipped and reported
// once, not refused; the rest applies.
func TestHugetlbSkippedWithoutController(t *testing.T) {
	tr := cgroupstest.NewV2(t, "cpu", "memory", "pids")
	var skipped []cgroups.Skipped
	m, err := cgroup2.New(tr.Unified, cgroup2.WithFake(tr.Fake), cgroup2.WithSkipped(func(s cgroups.Skipped) { skipped = append(skipped, s) }))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	kubelet := func() *cgroups.Resources {
		return &cgroups.Resources{CPUWeight: ptr[uint64](1), HugetlbMaxBytes: map[string]int64{"2MB": 0},
			Unified: map[string]string{"memory.high": "max", "memory.oom.group": "1"}}
	}
	for _, c := range []string{"/kubepods/pod1/c1", "/kubepods/pod1/c2"} {
		if err := m.Create(c, kubelet()); err != nil {
			t.Fatalf("Create(%s) with the kubelet's hugetlb limits: %v", c, err)
		}
		if got := tr.Read(tr.Unified, c, "memory.oom.group"); got != "1" {
			t.Errorf("%s memory.oom.group = %q; the rest of the resources must still apply", c, got)
		}
	}
	if err := m.Update("/kubepods/pod1/c1", kubelet()); err != nil {
		t.Fatalf("Update with the kubelet's hugetlb limits: %v", err)
	}
	want := []cgroups.Skipped{{Controller: "hugetlb", Cgroup: "/kubepods/pod1/c1", Files: []string{"hugetlb.2MB.max=0"},
		Reason: "the cgroup v2 hierarchy does not offer the hugetlb controller"}}
	if diff := cmp.Diff(want, skipped); diff != "" {
		t.Errorf("skip notices (-want +got):\n%s", diff)
	}
	if got := tr.Read(tr.Unified, "/kubepods", "cgroup.subtree_control"); strings.Contains(got, "hugetlb") {
		t.Errorf("/kubepods cgroup.subtree_control %q enables hugetlb", got)
	}
}

func TestUpdateAndPlacement(t *testing.T) {
	tr, m := newFake(t, all...)
	const c = "/pod/c"
	if err := m.Create(c, &cgroups.Resources{MemoryMaxBytes: ptr[int64](100 << 20), MemorySwapMaxBytes: ptr[int64](10 << 20)}); err != nil {
		t.Fatal(err)
	}
	// Swap grows: swap first; then memory. Both end up written.
	if err := m.Update(c, &cgroups.Resources{MemoryMaxBytes: ptr[int64](50 << 20), MemorySwapMaxBytes: ptr(cgroups.Max), CPUMax: &cgroups.CPUMax{QuotaMicros: cgroups.Max}}); err != nil {
		t.Fatal(err)
	}
	for f, v := range map[string]string{"memory.max": "52428800", "memory.swap.max": "max", "cpu.max": "max"} {
		if got := tr.Read(tr.Unified, c, f); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if err := m.Update("/nope", &cgroups.Resources{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Update of missing cgroup = %v, want NotFound", err)
	}
	if err := m.AddProc(c, 4242); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.Unified, c, "cgroup.procs"); got != "4242" {
		t.Errorf("cgroup.procs = %q", got)
	}
	if err := m.AddProc(c, -1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("AddProc(-1) = %v", err)
	}
	// The placement's fallback, for kernels without CLONE_INTO_CGROUP,
	// writes the same file through the cgroup's directory.
	pl, err := m.Placement(c)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if err := pl.AddProc(4343); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.Unified, c, "cgroup.procs"); got != "4343" {
		t.Errorf("cgroup.procs after the placement's AddProc = %q", got)
	}
	if _, err := m.Placement("/nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Placement of a missing cgroup = %v, want NotFound", err)
	}
	tr.Write(tr.Unified, c, "cgroup.procs", "")
	if err := m.Kill(c); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.Unified, c, "cgroup.kill"); got != "1" {
		t.Errorf("cgroup.kill = %q, want 1", got)
	}
}

func TestRemoveBottomUp(t *testing.T) {
	tr, m := newFake(t, all...)
	for _, p := range []string{"/pod/c1/sub/deeper", "/pod/c2"} {
		if err := m.Create(p, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Remove("/pod/c1"); err != nil {
		t.Fatal(err)
	}
	if tr.Exists(tr.Unified, "/pod/c1") || !tr.Exists(tr.Unified, "/pod/c2") {
		t.Errorf("Remove(/pod/c1) removed the wrong things")
	}
	if err := m.Remove("/pod/c1"); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	if err := m.Remove("/"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Remove(/) = %v", err)
	}
}

func TestKillFallbackWithoutCgroupKill(t *testing.T) {
	tr, m := newFake(t, all...)
	if err := m.Create("/p/c", nil); err != nil {
		t.Fatal(err)
	}
	tr.Remove(tr.Unified, "/p/c", "cgroup.kill") // Linux < 5.14
	tr.Write(tr.Unified, "/p/c", "cgroup.events", "populated 0\nfrozen 1\n")
	if err := m.Kill("/p/c"); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.Unified, "/p/c", "cgroup.freeze"); got != "0" {
		t.Errorf("cgroup.freeze = %q after kill, want thawed", got)
	}
}

func TestStatsAndOOM(t *testing.T) {
	tr, m := newFake(t, all...)
	const c = "/p/c"
	if err := m.Create(c, nil); err != nil {
		t.Fatal(err)
	}
	tr.Write(tr.Unified, c, "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 2\nthrottled_usec 30\ncore_sched.force_idle_usec 0\n")
	tr.Write(tr.Unified, c, "memory.current", "10000000\n")
	tr.Write(tr.Unified, c, "memory.max", "20000000\n")
	tr.Write(tr.Unified, c, "memory.stat", "anon 6000000\nfile 4000000\nactive_file 1000000\ninactive_file 3000000\npgfault 77\npgmajfault 3\n")
	tr.Write(tr.Unified, c, "pids.current", "5\n")
	tr.Write(tr.Unified, c, "pids.max", "max\n")
	tr.Write(tr.Unified, c, "memory.pressure", "some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=99\n")
	tr.Write(tr.Unified, c, "memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n")
	s, err := m.Stats(c)
	if err != nil {
		t.Fatal(err)
	}
	want := cgroups.Stats{
		CPU:    cgroups.CPUStats{UsageNanos: 1500000, UserNanos: 1000000, SystemNanos: 500000, Periods: 10, ThrottledPeriods: 2, ThrottledNanos: 30000},
		Memory: cgroups.MemoryStats{UsageBytes: 10000000, WorkingSetBytes: 7000000, RSSBytes: 6000000, PageFaults: 77, MajorPageFaults: 3, LimitBytes: 20000000, AvailableBytes: 13000000},
		Pids:   cgroups.PidsStats{Current: 5},
		PSI: &cgroups.PSIStats{Memory: cgroups.PSIData{
			Some: cgroups.PSILine{Avg10: 1.5, Avg60: 0.25, TotalMicros: 1234},
			Full: cgroups.PSILine{Avg10: 0.5, TotalMicros: 99}}},
	}
	if s.Timestamp.IsZero() {
		t.Error("no timestamp")
	}
	s.Timestamp = want.Timestamp
	if diff := cmp.Diff(&want, s); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	n, err := m.OOMKills(c)
	if err != nil || n != 1 {
		t.Errorf("OOMKills = %d, %v; want 1", n, err)
	}
	if _, err := m.Stats("/missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stats(missing) = %v", err)
	}
	// Working set never goes below zero.
	tr.Write(tr.Unified, c, "memory.current", "1000\n")
	if s, _ := m.Stats(c); s.Memory.WorkingSetBytes != 0 || s.Memory.AvailableBytes != 20000000 {
		t.Errorf("floored working set: %+v", s.Memory)
	}
}
