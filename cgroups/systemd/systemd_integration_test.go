package systemd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	sd "github.com/coreos/go-systemd/v22/dbus"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
	"github.com/crib-runtime/crib/cgroups/manager"
)

// TestSystemdScope runs the driver against a real systemd: a scope for a
// sleeping process in a slice of the test's own, with limits, an update,
// stats, a refused start, and removal with nothing left. It needs a node
// whose PID 1 is systemd and root, and makes units there, so it runs only
// when asked: CRIB_SYSTEMD_TEST=1 go test -run TestSystemdScope ./cgroups/systemd
// (hack/systemd-test.sh runs it on this repository's hosts, which have no
// systemd, in a systemd container of their own).
func TestSystemdScope(t *testing.T) {
	if os.Getenv("CRIB_SYSTEMD_TEST") != "1" {
		t.Skip("makes units in the node's systemd: set CRIB_SYSTEMD_TEST=1 where PID 1 is systemd")
	}
	if os.Geteuid() != 0 {
		t.Fatal("CRIB_SYSTEMD_TEST=1 needs root")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	files, err := manager.New(host, manager.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	units := New(files, DialSystemd)
	defer units.Close()
	version, err := units.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	look, err := sd.NewWithContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer look.Close()
	t.Logf("systemd %d, cgroup mode %s", version, host.Mode)

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	paths := cgroups.Paths{Driver: cgroups.DriverSystemd}
	slice := "cribtest" + id + ".slice"
	dir, err := paths.Parent(slice)
	if err != nil {
		t.Fatal(err)
	}
	cgroup, err := paths.Leaf(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	scope := cgroups.ScopeName(id)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, p := range []string{cgroup, dir} {
			if err := files.Remove(p); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			if err := units.Release(ctx, p); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	deny := cgroups.DeviceRule{Allow: false, Type: cgroups.DeviceAll, Major: cgroups.AnyDevice, Minor: cgroups.AnyDevice, Access: "rwm"}
	null := cgroups.DeviceRule{Allow: true, Type: cgroups.DeviceChar, Major: 1, Minor: 3, Access: "rwm"}
	pts := cgroups.DeviceRule{Allow: true, Type: cgroups.DeviceChar, Major: 136, Minor: cgroups.AnyDevice, Access: "rw"}
	r := &cgroups.Resources{
		CPUWeight:      ptr(uint64(50)),
		CPUMax:         &cgroups.CPUMax{QuotaMicros: 12345, PeriodMicros: 100000},
		MemoryMaxBytes: ptr(int64(64 << 20)),
		PidsMax:        ptr(int64(64)),
		Devices:        []cgroups.DeviceRule{deny, null, pts},
	}
	if err := files.Create(cgroup, r); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	if err := files.AddProc(cgroup, sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := units.Adopt(ctx, cgroup, sleep.Process.Pid, r); err != nil {
		t.Fatal(err)
	}

	// systemd has the unit, where crib put it, with crib's limits.
	unit := unitProps(ctx, t, look, scope)
	if unit["ActiveState"] != "active" || !strings.HasSuffix(unit["ControlGroup"].(string), cgroup) ||
		unit["Slice"] != slice || unit["Delegate"] != true || unit["TasksMax"] != uint64(64) || unit["CPUQuotaPerSecUSec"] != uint64(130000) {
		t.Errorf("unit %s: %v", scope, pick(unit, "ActiveState", "ControlGroup", "Slice", "Delegate", "TasksMax", "CPUQuotaPerSecUSec"))
	}
	memory := "MemoryLimit"
	if host.Mode == cgroups.ModeUnified {
		memory = "MemoryMax"
	}
	if unit[memory] != uint64(64<<20) || unit["DevicePolicy"] != "strict" {
		t.Errorf("unit %s: %v", scope, pick(unit, memory, "DevicePolicy", "DeviceAllow"))
	}
	// The files hold crib's exact values, not systemd's rounded quota.
	if got := cgroupstest.HostFile(t, host, "pids", cgroup, "pids.max"); got != "64" {
		t.Errorf("pids.max %q, want 64", got)
	}
	if host.Mode == cgroups.ModeUnified {
		if got := cgroupstest.HostFile(t, host, "cpu", cgroup, "cpu.max"); got != "12345 100000" {
			t.Errorf("cpu.max %q", got)
		}
	} else {
		if got := cgroupstest.HostFile(t, host, "cpu", cgroup, "cpu.cfs_quota_us"); got != "12345" {
			t.Errorf("cpu.cfs_quota_us %q", got)
		}
		got := strings.Split(cgroupstest.HostFile(t, host, "devices", cgroup, "devices.list"), "\n")
		if slices.Sort(got); !slices.Equal(got, []string{"c 136:* rw", "c 1:3 rwm"}) {
			t.Errorf("devices.list %q", got)
		}
	}
	st, err := files.Stats(cgroup)
	if err != nil || st.Pids.Current != 1 {
		t.Errorf("stats: %+v, %v", st, err)
	}

	// An update reaches systemd and the files.
	up := &cgroups.Resources{PidsMax: ptr(int64(128)), MemoryMaxBytes: ptr(int64(128 << 20))}
	if err := units.Update(ctx, cgroup, up); err != nil {
		t.Fatal(err)
	}
	if err := files.Update(cgroup, up); err != nil {
		t.Fatal(err)
	}
	unit = unitProps(ctx, t, look, scope)
	if unit["TasksMax"] != uint64(128) || unit[memory] != uint64(128<<20) {
		t.Errorf("after the update: %v", pick(unit, "TasksMax", memory))
	}
	if got := cgroupstest.HostFile(t, host, "pids", cgroup, "pids.max"); got != "128" {
		t.Errorf("pids.max %q after the update, want 128", got)
	}
	// Adopted again (a start taken up after a restart): nothing to do.
	if err := units.Adopt(ctx, cgroup, sleep.Process.Pid, nil); err != nil {
		t.Errorf("Adopt again: %v", err)
	}

	// A process that is gone: systemd refuses the scope, and nothing stays.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	other, _ := paths.Leaf(dir, id+"x")
	if err := files.Create(other, nil); err != nil {
		t.Fatal(err)
	}
	err = units.Adopt(ctx, other, gone.Process.Pid, nil)
	t.Logf("Adopt of a gone pid: %v", err)
	if err == nil {
		t.Error("systemd made a scope for a pid that is gone")
	}
	if err := errors.Join(files.Remove(other), units.Release(ctx, other)); err != nil {
		t.Error(err)
	}

	// A pid that is another process's (crib's died and the pid was
	// reused): refused before systemd moves the process into the scope.
	stranger := exec.Command("sleep", "1000")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stranger.Process.Kill(); _ = stranger.Wait() }()
	home, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", stranger.Process.Pid))
	reused, _ := paths.Leaf(dir, id+"r")
	if err := files.Create(reused, nil); err != nil {
		t.Fatal(err)
	}
	if err := units.Adopt(ctx, reused, stranger.Process.Pid, nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Adopt of another cgroup's pid = %v, want FailedPrecondition", err)
	}
	if now, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", stranger.Process.Pid)); string(now) != string(home) {
		t.Errorf("the stranger was moved: from\n%s\nto\n%s", home, now)
	}
	if err := errors.Join(files.Remove(reused), units.Release(ctx, reused)); err != nil {
		t.Error(err)
	}

	oomInScope(ctx, t, files, units, dir, id+"oom")

	// Removal: crib kills and removes, then the unit stops; the slice
	// the test made goes the same way, and nothing is left.
	if err := files.Remove(cgroup); err != nil {
		t.Fatal(err)
	}
	_ = sleep.Wait()
	if err := units.Release(ctx, cgroup); err != nil {
		t.Fatal(err)
	}
	if err := files.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := units.Release(ctx, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{scope, cgroups.ScopeName(id + "x"), cgroups.ScopeName(id + "oom"), slice} {
		u, err := look.GetUnitPropertiesContext(ctx, name)
		if err == nil && (u["ActiveState"] != "inactive" || u["LoadState"] == "loaded" && u["SubState"] != "dead") {
			t.Errorf("unit %s left: %v", name, pick(u, "LoadState", "ActiveState", "SubState"))
		}
	}
	mounts := []string{host.Unified}
	for _, h := range host.Hierarchies {
		mounts = append(mounts, h.Mountpoint)
	}
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m, dir)); m != "" && err == nil {
			t.Errorf("%s%s left", m, dir)
		}
	}
}

// unitProps are a scope's unit and scope properties together.
func unitProps(ctx context.Context, t *testing.T, c *sd.Conn, scope string) map[string]any {
	t.Helper()
	u, err := c.GetUnitPropertiesContext(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.GetUnitTypePropertiesContext(ctx, scope, "Scope")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range s {
		u[k] = v
	}
	return u
}

func pick(m map[string]any, keys ...string) map[string]any {
	out := map[string]any{}
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// oomInScope: a process of a scope is OOM-killed; systemd stops the scope
// and removes its cgroup as soon as it is empty, and the kill was heard
// all the same (cgroups.OOMWatcher, what the shim relies on).
func oomInScope(ctx context.Context, t *testing.T, files manager.Manager, units *Units, dir, id string) {
	t.Helper()
	cgroup, _ := cgroups.Paths{Driver: cgroups.DriverSystemd}.Leaf(dir, id)
	r := &cgroups.Resources{MemoryMaxBytes: ptr(int64(16 << 20)), MemorySwapMaxBytes: ptr(int64(0))}
	if err := files.Create(cgroup, r); err != nil {
		t.Fatal(err)
	}
	seen := make(chan struct{}, 16)
	stop, err := files.(cgroups.OOMWatcher).WatchOOM(cgroup, func() { seen <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	hog := exec.Command("sh", "-c", `read go; x=.........................................; while :; do x="$x$x"; done`)
	in, err := hog.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hog.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hog.Process.Kill(); _ = hog.Wait() }()
	if err := files.AddProc(cgroup, hog.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := units.Adopt(ctx, cgroup, hog.Process.Pid, r); err != nil {
		t.Fatal(err)
	}
	_, _ = in.Write([]byte("go\n"))
	if err := hog.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the hog under 16 MiB: %v, want killed", err)
	}
	select {
	case <-seen:
	case <-time.After(5 * time.Second):
		t.Error("the OOM kill in the scope was not heard")
	}
	// systemd's doing, not crib's: nobody here removed it. (On v1 it
	// removes the hierarchies it manages, memory among them, and leaves
	// cpuset's and freezer's to crib.)
	gone := false
	for deadline := time.Now().Add(5 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, err := files.OOMKills(cgroup)
		gone = err != nil
	}
	if !gone {
		t.Errorf("systemd left the cgroup of the emptied scope %s", cgroup)
	}
	if err := errors.Join(files.Remove(cgroup), units.Release(ctx, cgroup)); err != nil {
		t.Error(err)
	}
}
