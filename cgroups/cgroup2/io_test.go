package cgroup2_test

import (
	"strings"
	"testing"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup2"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

func u64(v uint64) *uint64 { return &v }

func newIOFake(t *testing.T, controllers ...string) (*cgroupstest.Tree, *cgroup2.Manager, *[]cgroups.Skipped) {
	t.Helper()
	tr := cgroupstest.NewV2(t, controllers...)
	var skipped []cgroups.Skipped
	m, err := cgroup2.New(tr.Unified, cgroup2.WithFake(tr.Fake), cgroup2.WithSkipped(func(s cgroups.Skipped) { skipped = append(skipped, s) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return tr, m, &skipped
}

func TestIOMaxAndWeight(t *testing.T) {
	tr, m, skipped := newIOFake(t, "cpu", "memory", "pids", "io")
	const c = "/pod1/c1"
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Weight: 1000,
		Throttles: []cgroups.DeviceThrottle{{Major: 254, Minor: 0, ReadBps: u64(1 << 20), WriteIOPS: u64(0)}}}}
	if err := m.Create(c, r); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.Unified, "/pod1", "cgroup.subtree_control"); !strings.Contains(got, "io") {
		t.Errorf("io not enabled for the container: subtree_control %q", got)
	}
	if got := tr.Read(tr.Unified, c, "io.max"); got != "254:0 rbps=1048576 wiops=max" {
		t.Errorf("io.max = %q", got)
	}
	if got := tr.Read(tr.Unified, c, "io.weight"); got != "10000" {
		t.Errorf("io.weight = %q, want 10000 (blkio 1000 scaled)", got)
	}
	// BFQ's file, where the cgroup has one, takes blkio's unit as is.
	tr.Write(tr.Unified, c, "io.bfq.weight", "100\n")
	if err := m.Update(c, &cgroups.Resources{BlockIO: &cgroups.BlockIO{WeightDevices: []cgroups.DeviceWeight{{Major: 8, Minor: 16, Weight: 70}}}}); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.Unified, c, "io.bfq.weight"); got != "8:16 70" {
		t.Errorf("io.bfq.weight = %q", got)
	}
	// Without either file the weights are skipped with a notice.
	tr.Remove(tr.Unified, c, "io.bfq.weight")
	tr.Remove(tr.Unified, c, "io.weight")
	if err := m.Update(c, &cgroups.Resources{BlockIO: &cgroups.BlockIO{Weight: 50}}); err != nil {
		t.Fatal(err)
	}
	if len(*skipped) != 1 || (*skipped)[0].Controller != "io weight" || (*skipped)[0].Files[0] != "io.weight=50" {
		t.Errorf("skipped %+v", *skipped)
	}
	if cgroup2.IOWeight(10) != 1 || cgroup2.IOWeight(100) != 910 {
		t.Errorf("IOWeight(10)=%d IOWeight(100)=%d", cgroup2.IOWeight(10), cgroup2.IOWeight(100))
	}
}

// A throttle is a limit: without the io controller it fails, naming it.
func TestIOWithoutController(t *testing.T) {
	_, m, _ := newIOFake(t, "cpu", "memory", "pids")
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Throttles: []cgroups.DeviceThrottle{{Major: 8, ReadBps: u64(1)}}}}
	if err := m.Create("/c", r); err == nil || !strings.Contains(err.Error(), "controller io is not available") {
		t.Fatalf("Create without io: %v", err)
	}
}
