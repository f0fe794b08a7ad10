package cgroup2_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
	"github.com/crib-runtime/crib/cgroups/internal/devfilter"
)

func rule(allow bool, typ cgroups.DeviceType, major, minor int64, access string) cgroups.DeviceRule {
	return cgroups.DeviceRule{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

var defaultRules = []cgroups.DeviceRule{
	rule(false, cgroups.DeviceAll, cgroups.AnyDevice, cgroups.AnyDevice, "rwm"),
	rule(true, 'c', cgroups.AnyDevice, cgroups.AnyDevice, "m"),
	rule(true, 'c', 1, 3, "rwm"),
	rule(true, 'c', 1, 9, "rwm"),
}

func programFor(t *testing.T, rules []cgroups.DeviceRule) []byte {
	t.Helper()
	set, err := cgroups.NewDeviceSet(rules)
	if err != nil {
		t.Fatal(err)
	}
	return devfilter.Encode(devfilter.Program(set))
}

// TestCreateAttachesDeviceProgram: the container's cgroup gets the program
// generated from its rules, the pod's none; an update replaces it; an
// update without rules leaves it.
func TestCreateAttachesDeviceProgram(t *testing.T) {
	tr, m := newFake(t, all...)
	const pod, c = "/kubepods/pod1", "/kubepods/pod1/c1"
	if err := m.Create(pod, &cgroups.Resources{PidsMax: ptr[int64](10)}); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(c, &cgroups.Resources{Devices: defaultRules, PidsMax: ptr[int64](5)}); err != nil {
		t.Fatal(err)
	}
	if got := tr.DeviceProgram(pod); got != nil {
		t.Errorf("pod cgroup got a device program (%d bytes)", len(got))
	}
	if got, want := tr.DeviceProgram(c), programFor(t, defaultRules); !bytes.Equal(got, want) {
		t.Errorf("program of %s:\n% x\nwant\n% x", c, got, want)
	}
	if err := m.Update(c, &cgroups.Resources{PidsMax: ptr[int64](6)}); err != nil {
		t.Fatal(err)
	}
	if n := tr.DeviceAttaches[cgroupstest.Path(tr.Unified, c)]; n != 1 {
		t.Errorf("an update without devices attached again (%d attaches)", n)
	}
	if err := m.Update(c, &cgroups.Resources{Devices: cgroups.AllowAllDevices()}); err != nil {
		t.Fatal(err)
	}
	if got, want := tr.DeviceProgram(c), programFor(t, cgroups.AllowAllDevices()); !bytes.Equal(got, want) {
		t.Errorf("after the update: % x, want % x", got, want)
	}
}

func TestDeviceProgramFailureIsAnError(t *testing.T) {
	tr, m := newFake(t, all...)
	tr.FailAttachDevices = unix.EPERM
	err := m.Create("/pod1/c1", &cgroups.Resources{Devices: defaultRules})
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "device") {
		t.Errorf("err = %v, want EPERM naming the device rules", err)
	}
	if tr.Exists(tr.Unified, "/pod1") {
		t.Error("Create left /pod1 behind")
	}
}
