package devfilter

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
	"github.com/crib-runtime/crib/internal/testutil"
)

// TestMain lets the test binary be the process in the filtered cgroup: with
// CRIB_DEVFILTER_HELPER set to a directory it tries to open /dev/null,
// /dev/zero and a /dev/vcs node it makes there, and prints what happened.
func TestMain(m *testing.M) {
	if dir := os.Getenv("CRIB_DEVFILTER_HELPER"); dir != "" {
		os.Stdout.WriteString(cgroupstest.ProbeDevices(dir) + "\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// unifiedMount finds the cgroup2 mount (the whole hierarchy on a v2 host,
// /sys/fs/cgroup/unified on a hybrid one). A legacy host has none, but its
// kernel has the hierarchy and runs device programs attached there: the
// test mounts it for its own use.
func unifiedMount(t *testing.T) string {
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if host.Unified != "" {
		return host.Unified
	}
	dir := t.TempDir()
	if err := unix.Mount("cgroup2", dir, "cgroup2", 0, ""); err != nil {
		testutil.SkipOrFail(t, "no cgroup2 mount and none can be made: "+err.Error())
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

// TestAttachFiltersDevices attaches programs to a real cgroup and runs a
// process born in it: the default rules let it open /dev/null and make a
// /dev/vcs node but not open that node or /dev/zero (not in this list);
// after an update to allow all, the program is replaced, not added.
func TestAttachFiltersDevices(t *testing.T) {
	testutil.RequireRoot(t)
	mnt := unifiedMount(t)
	b := make([]byte, 6)
	rand.Read(b)
	cg := filepath.Join(mnt, "crib-test-"+hex.EncodeToString(b))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	dir, err := os.Open(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	any := cgroups.AnyDevice
	rules := []cgroups.DeviceRule{
		{Allow: false, Type: cgroups.DeviceAll, Major: any, Minor: any, Access: "rwm"},
		{Allow: true, Type: 'c', Major: any, Minor: any, Access: "m"},
		{Allow: true, Type: 'c', Major: 1, Minor: 3, Access: "rwm"},
	}
	set, err := cgroups.NewDeviceSet(rules)
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(int(dir.Fd()), Encode(Program(set))); err != nil {
		t.Fatal(err)
	}
	if got, want := probe(t, dir), "null=ok zero=operation not permitted mknod=ok vcs=operation not permitted"; got != want {
		t.Errorf("restricted: %q, want %q", got, want)
	}
	all, err := cgroups.NewDeviceSet(cgroups.AllowAllDevices())
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(int(dir.Fd()), Encode(Program(all))); err != nil {
		t.Fatal(err)
	}
	ids, err := Attached(int(dir.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Errorf("%d programs attached after an update, want 1 (ids %v)", len(ids), ids)
	}
	if got, want := probe(t, dir), "null=ok zero=ok mknod=ok vcs=ok"; got != want {
		t.Errorf("allow all: %q, want %q", got, want)
	}
}

// probe runs the helper born in the cgroup dir (clone3 CLONE_INTO_CGROUP).
func probe(t *testing.T, dir *os.File) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CRIB_DEVFILTER_HELPER="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestLoadRefusesGarbage(t *testing.T) {
	if _, err := Load(make([]byte, 5)); err == nil || !strings.Contains(err.Error(), "not a program") {
		t.Errorf("Load of 5 bytes: %v", err)
	}
}
