package cgroup1_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

func rule(allow bool, typ cgroups.DeviceType, major, minor int64, access string) cgroups.DeviceRule {
	return cgroups.DeviceRule{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

var (
	anyDev  = cgroups.AnyDevice
	denyAll = rule(false, cgroups.DeviceAll, anyDev, anyDev, "rwm")
	// defaultRules are the start of cri/spec's default list.
	defaultRules = []cgroups.DeviceRule{
		denyAll, rule(true, 'c', anyDev, anyDev, "m"), rule(true, 'b', anyDev, anyDev, "m"),
		rule(true, 'c', 1, 3, "rwm"), rule(true, 'c', 1, 5, "rwm"), rule(true, 'c', 136, anyDev, "rwm"),
	}
)

var devHier = []string{"cpu,cpuacct", "memory", "pids", "freezer", "devices"}

func devicesDir(tr *cgroupstest.Tree, cg string) string {
	return cgroupstest.Path(tr.V1["devices"], cg)
}

// TestCreateWritesDeviceRules: under a pod cgroup that allows every device
// (as a kubelet's does), the container's cgroup gets deny-all and then each
// allow, and devices.list shows exactly the allow list.
func TestCreateWritesDeviceRules(t *testing.T) {
	tr, m := newFake(t, true, devHier...)
	const pod, c = "/kubepods/pod1", "/kubepods/pod1/c1"
	if err := m.Create(pod, &cgroups.Resources{PidsMax: ptr[int64](100)}); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(c, &cgroups.Resources{Devices: defaultRules}); err != nil {
		t.Fatal(err)
	}
	want := []string{"deny a", "allow c *:* m", "allow b *:* m", "allow c 1:3 rwm", "allow c 1:5 rwm", "allow c 136:* rwm"}
	if d := cmp.Diff(want, tr.DeviceWrites[devicesDir(tr, c)]); d != "" {
		t.Errorf("writes (-want +got)\n%s", d)
	}
	if got, want := tr.Read(tr.V1["devices"], c, "devices.list"), "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 136:* rwm"; got != want {
		t.Errorf("devices.list = %q, want %q", got, want)
	}
	// The pod's cgroup (no rules asked) is left as it was: allow all.
	if w := tr.DeviceWrites[devicesDir(tr, pod)]; w != nil {
		t.Errorf("pod cgroup got device writes %q", w)
	}
	if got := tr.Read(tr.V1["devices"], pod, "devices.list"); got != "a *:* rwm" {
		t.Errorf("pod devices.list = %q", got)
	}
}

// TestUpdateDeviceRulesKeepsCommonDevices: an update of a live allow list
// adds first and removes after, never writing deny-all, so that the
// container does not lose /dev/null for a moment; an update to allow-all
// (privileged) and back works too; nil leaves the rules alone.
func TestUpdateDeviceRulesKeepsCommonDevices(t *testing.T) {
	tr, m := newFake(t, false, devHier...)
	const c = "/pod1/c1"
	if err := m.Create(c, &cgroups.Resources{Devices: defaultRules}); err != nil {
		t.Fatal(err)
	}
	dir := devicesDir(tr, c)
	tr.DeviceWrites[dir] = nil
	next := []cgroups.DeviceRule{denyAll, rule(true, 'c', 1, 3, "rwm"), rule(true, 'c', 1, 5, "r"), rule(true, 'c', 10, 200, "rwm")}
	if err := m.Update(c, &cgroups.Resources{Devices: next}); err != nil {
		t.Fatal(err)
	}
	want := []string{"allow c 1:5 r", "allow c 10:200 rwm", "deny c *:* m", "deny b *:* m", "deny c 1:5 wm", "deny c 136:* rwm"}
	if d := cmp.Diff(want, tr.DeviceWrites[dir]); d != "" {
		t.Errorf("writes (-want +got)\n%s", d)
	}
	if got, want := tr.Read(tr.V1["devices"], c, "devices.list"), "c 1:3 rwm\nc 1:5 r\nc 10:200 rwm"; got != want {
		t.Errorf("devices.list = %q, want %q", got, want)
	}
	if err := m.Update(c, &cgroups.Resources{PidsMax: ptr[int64](5)}); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.V1["devices"], c, "devices.list"); got != "c 1:3 rwm\nc 1:5 r\nc 10:200 rwm" {
		t.Errorf("an update without devices changed devices.list to %q", got)
	}
	if err := m.Update(c, &cgroups.Resources{Devices: cgroups.AllowAllDevices()}); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.V1["devices"], c, "devices.list"); got != "a *:* rwm" {
		t.Errorf("allow all: devices.list = %q", got)
	}
	if err := m.Update(c, &cgroups.Resources{Devices: defaultRules}); err != nil {
		t.Fatal(err)
	}
	if got := tr.Read(tr.V1["devices"], c, "devices.list"); got != "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 136:* rwm" {
		t.Errorf("back to the defaults: devices.list = %q", got)
	}
}

// TestDeviceRulesFailLoudly: no devices controller, a write the kernel
// refuses (a parent that denies the device) and a devices.list that does
// not end up as asked are each an error, and Create leaves nothing behind.
func TestDeviceRulesFailLoudly(t *testing.T) {
	t.Run("no devices controller", func(t *testing.T) {
		tr, m := newFake(t, true, "cpu,cpuacct", "memory", "pids")
		err := m.Create("/pod1/c1", &cgroups.Resources{Devices: defaultRules})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "the devices controller is not mounted") {
			t.Errorf("err = %v", err)
		}
		if tr.Exists(tr.V1["pids"], "/pod1") {
			t.Error("Create left /pod1 behind")
		}
	})
	t.Run("kernel refuses", func(t *testing.T) {
		tr, m := newFake(t, true, devHier...)
		tr.FailDeviceWrite = func(dir, file, value string) error {
			if value == "c 136:* rwm" {
				return unix.EPERM
			}
			return nil
		}
		err := m.Create("/pod1/c1", &cgroups.Resources{Devices: defaultRules})
		if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "devices.allow") || !strings.Contains(err.Error(), "c 136:* rwm") {
			t.Errorf("err = %v", err)
		}
		if tr.Exists(tr.V1["devices"], "/pod1") {
			t.Error("Create left /pod1 behind")
		}
	})
	t.Run("list differs", func(t *testing.T) {
		tr, m := newFake(t, true, devHier...)
		// The write "succeeds" but the kernel keeps allowing all, as
		// when the fake does not play it.
		tr.Fake.Write = func(path, value string) (bool, error) {
			return filepath.Base(path) == "devices.allow" || filepath.Base(path) == "devices.deny", nil
		}
		err := m.Create("/pod1/c1", &cgroups.Resources{Devices: defaultRules})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "devices.list is") {
			t.Errorf("err = %v", err)
		}
	})
}
