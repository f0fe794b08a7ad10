package manager_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/testutil"
)

// hostDisk returns the major and minor of a whole disk of this host, from
// /sys/block (loop devices last: a real disk is the likelier target).
func hostDisk(t *testing.T) (int64, int64) {
	t.Helper()
	ents, _ := os.ReadDir("/sys/block")
	var devs []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(e.Name(), "loop") {
			devs = append(devs, strings.TrimSpace(string(b)))
		} else {
			devs = append([]string{strings.TrimSpace(string(b))}, devs...)
		}
	}
	if len(devs) == 0 {
		testutil.SkipOrFail(t, "no block device under /sys/block")
	}
	maj, min, _ := strings.Cut(devs[0], ":")
	ma, err1 := strconv.ParseInt(maj, 10, 64)
	mi, err2 := strconv.ParseInt(min, 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/sys/block: device %q", devs[0])
	}
	return ma, mi
}

// TestHostBlockIOThrottle writes a throttle to a real cgroup and reads it
// back as the kernel shows it; a weight this host cannot apply is skipped
// with a notice, not an error.
func TestHostBlockIOThrottle(t *testing.T) {
	var skipped []cgroups.Skipped
	m := openHostWith(t, manager.Options{Skipped: func(s cgroups.Skipped) { skipped = append(skipped, s) }})
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if host.Mode != cgroups.ModeUnified && host.V1Controllers()["blkio"] == "" {
		testutil.SkipOrFail(t, "cgroup v1 host lacks the blkio controller")
	}
	maj, min := hostDisk(t)
	dev := strconv.FormatInt(maj, 10) + ":" + strconv.FormatInt(min, 10)
	c := testRoot(t, m) + "/c1"
	r := &cgroups.Resources{BlockIO: &cgroups.BlockIO{Weight: 200, Throttles: []cgroups.DeviceThrottle{
		{Major: maj, Minor: min, ReadBps: ptr(uint64(1 << 20)), WriteIOPS: ptr(uint64(300))}}}}
	if err := m.Create(c, r); err != nil {
		t.Fatalf("Create with throttles on %s: %v", dev, err)
	}
	var weightFile string
	if host.Mode == cgroups.ModeUnified {
		dir := filepath.Join(host.Unified, c)
		b, err := os.ReadFile(filepath.Join(dir, "io.max"))
		if err != nil {
			t.Fatal(err)
		}
		if want := dev + " rbps=1048576 wbps=max riops=max wiops=300"; !strings.Contains(string(b), want) {
			t.Errorf("io.max = %q, want a line %q", b, want)
		}
		weightFile = filepath.Join(dir, "io.weight")
		if _, err := os.Stat(filepath.Join(dir, "io.bfq.weight")); err == nil {
			weightFile = filepath.Join(dir, "io.bfq.weight")
		}
	} else {
		dir := filepath.Join(host.V1Controllers()["blkio"], c)
		for file, want := range map[string]string{"blkio.throttle.read_bps_device": dev + " 1048576", "blkio.throttle.write_iops_device": dev + " 300"} {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(b)) != want {
				t.Errorf("%s = %q, want %q", file, b, want)
			}
		}
		weightFile = filepath.Join(dir, "blkio.weight")
		if _, err := os.Stat(filepath.Join(dir, "blkio.bfq.weight")); err == nil {
			weightFile = filepath.Join(dir, "blkio.bfq.weight")
		}
	}
	if _, err := os.Stat(weightFile); err == nil {
		if len(skipped) != 0 {
			t.Errorf("weight skipped although %s exists: %+v", weightFile, skipped)
		}
	} else if len(skipped) != 1 || !strings.HasSuffix(skipped[0].Controller, " weight") {
		t.Errorf("no weight file (%s), but skipped = %+v", weightFile, skipped)
	} else {
		t.Logf("weight skipped: %s", skipped[0].Reason)
	}
	// 0 lifts the limit again.
	if err := m.Update(c, &cgroups.Resources{BlockIO: &cgroups.BlockIO{Throttles: []cgroups.DeviceThrottle{{Major: maj, Minor: min, ReadBps: ptr(uint64(0))}}}}); err != nil {
		t.Fatalf("Update lifting the limit: %v", err)
	}
}
