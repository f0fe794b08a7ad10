package cgroup1_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup1"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

func newBlkioFake(t *testing.T) (*cgroupstest.Tree, *cgroup1.Manager, *[]cgroups.Skipped) {
	t.Helper()
	tr := cgroupstest.NewHybrid(t, append(hier, "blkio")...)
	host, err := cgroups.Detect(tr.Mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	var skipped []cgroups.Skipped
	m, err := cgroup1.New(host, cgroup1.WithFake(tr.Fake), cgroup1.WithSkipped(func(s cgroups.Skipped) { skipped = append(skipped, s) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return tr, m, &skipped
}

func TestBlkioThrottles(t *testing.T) {
	tr, m, skipped := newBlkioFake(t)
	const c = "/kubepods/pod1/c1"
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Throttles: []cgroups.DeviceThrottle{
		{Major: 254, Minor: 0, ReadBps: ptr[uint64](1 << 20), WriteBps: ptr[uint64](2 << 20), ReadIOPS: ptr[uint64](100), WriteIOPS: ptr[uint64](0)},
	}}}
	if err := m.Create(c, r); err != nil {
		t.Fatal(err)
	}
	blkio := tr.V1["blkio"]
	for file, want := range map[string]string{
		"blkio.throttle.read_bps_device": "254:0 1048576", "blkio.throttle.write_bps_device": "254:0 2097152",
		"blkio.throttle.read_iops_device": "254:0 100", "blkio.throttle.write_iops_device": "254:0 0",
	} {
		if got := tr.Read(blkio, c, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if len(*skipped) != 0 {
		t.Errorf("skipped %v", *skipped)
	}
}

// On a host without weight files (mq-deadline, none: this project's
// hosts) a weight is skipped with a notice, the throttles still written.
func TestBlkioWeightSkippedWithoutWeightFile(t *testing.T) {
	tr, m, skipped := newBlkioFake(t)
	const c = "/pod1/c1"
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Weight: 80,
		WeightDevices: []cgroups.DeviceWeight{{Major: 254, Minor: 0, Weight: 50}},
		Throttles:     []cgroups.DeviceThrottle{{Major: 254, Minor: 0, ReadBps: ptr[uint64](4096)}}}}
	if err := m.Create(c, r); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.V1["blkio"], c, "blkio.throttle.read_bps_device"); got != "254:0 4096" {
		t.Errorf("read_bps_device = %q", got)
	}
	want := []cgroups.Skipped{{Controller: "blkio weight", Cgroup: c,
		Files: []string{"blkio.weight=80", "blkio.weight_device=254:0 50"}}}
	if d := cmp.Diff(want, *skipped, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Reason" }, cmp.Ignore())); d != "" {
		t.Errorf("skipped (-want +got):\n%s", d)
	}
	if len(*skipped) == 1 && (*skipped)[0].Reason == "" {
		t.Error("a skip without a reason")
	}
}

// Where the cgroup has BFQ's weight files they are written.
func TestBlkioWeightBFQ(t *testing.T) {
	tr, m, skipped := newBlkioFake(t)
	const c = "/pod1/c1"
	if err := m.Create(c, nil); err != nil {
		t.Fatal(err)
	}
	blkio := tr.V1["blkio"]
	tr.Write(blkio, c, "blkio.bfq.weight", "100\n")
	tr.Write(blkio, c, "blkio.bfq.weight_device", "")
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Weight: 300, WeightDevices: []cgroups.DeviceWeight{{Major: 8, Minor: 0, Weight: 20}}}}
	if err := m.Update(c, r); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(blkio, c, "blkio.bfq.weight"); got != "300" {
		t.Errorf("blkio.bfq.weight = %q", got)
	}
	if got := tr.Read(blkio, c, "blkio.bfq.weight_device"); got != "8:0 20" {
		t.Errorf("blkio.bfq.weight_device = %q", got)
	}
	if len(*skipped) != 0 {
		t.Errorf("skipped %v", *skipped)
	}
}

func TestBlkioNeedsController(t *testing.T) {
	_, m := newFake(t, true, hier...)
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Throttles: []cgroups.DeviceThrottle{{Major: 8, ReadBps: ptr[uint64](1)}}}}
	if err := m.Create("/c", r); err == nil || !strings.Contains(err.Error(), "blkio controller is not mounted") {
		t.Fatalf("Create without blkio: %v", err)
	}
	r = &cgroups.Resources{BlockIO: &cgroups.BlockIO{Weight: 5}}
	if err := m.Create("/c", r); err == nil || !strings.Contains(err.Error(), "block I/O weight 5: want 10..1000") {
		t.Fatalf("weight 5: %v", err)
	}
}
