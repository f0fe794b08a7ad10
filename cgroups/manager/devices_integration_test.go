package manager_test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/cgroups"
)

// probeIn runs cgroupstest.ProbeDevices in a helper process moved into path.
func probeIn(t *testing.T, m cgroups.Manager, path string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CRIB_CGROUPS_HELPER=devices:"+t.TempDir())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := m.AddProc(path, cmd.Process.Pid); err != nil {
		t.Fatalf("AddProc(%s): %v", path, err)
	}
	io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, stdout.String())
	}
	return strings.TrimSpace(stdout.String())
}

func devRule(allow bool, typ cgroups.DeviceType, major, minor int64, access string) cgroups.DeviceRule {
	return cgroups.DeviceRule{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

// TestHostDeviceRules: a container's cgroup under a pod cgroup that allows
// every device gets cri/spec's default rules (devices.list on v1, the
// program on v2): a process in it opens /dev/null and /dev/zero and may
// make a /dev/vcs node but not open it. A privileged sibling allows all.
func TestHostDeviceRules(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	pod, c1, priv := root+"/kubepods/pod1", root+"/kubepods/pod1/c1", root+"/kubepods/pod1/priv"
	if err := m.Create(pod, &cgroups.Resources{PidsMax: ptr[int64](100)}); err != nil {
		t.Fatal(err)
	}
	any := cgroups.AnyDevice
	rules := []cgroups.DeviceRule{
		devRule(false, cgroups.DeviceAll, any, any, "rwm"),
		devRule(true, 'c', any, any, "m"), devRule(true, 'b', any, any, "m"),
		devRule(true, 'c', 1, 3, "rwm"), devRule(true, 'c', 1, 5, "rwm"), devRule(true, 'c', 136, any, "rwm"),
	}
	if err := m.Create(c1, &cgroups.Resources{Devices: rules}); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(priv, &cgroups.Resources{Devices: cgroups.AllowAllDevices()}); err != nil {
		t.Fatal(err)
	}
	if m.Mode() != cgroups.ModeUnified {
		mnt := "/sys/fs/cgroup/devices"
		for cg, want := range map[string]string{
			pod:  "a *:* rwm",
			c1:   "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 136:* rwm",
			priv: "a *:* rwm",
		} {
			b, err := os.ReadFile(filepath.Join(mnt, cg, "devices.list"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != want {
				t.Errorf("%s devices.list = %q, want %q", cg, got, want)
			}
		}
	}
	if got, want := probeIn(t, m, c1), "null=ok zero=ok mknod=ok vcs=operation not permitted"; got != want {
		t.Errorf("container: %q, want %q", got, want)
	}
	if got, want := probeIn(t, m, priv), "null=ok zero=ok mknod=ok vcs=ok"; got != want {
		t.Errorf("privileged: %q, want %q", got, want)
	}
	// An update narrows the live cgroup: /dev/zero goes.
	if err := m.Update(c1, &cgroups.Resources{Devices: rules[:4]}); err != nil {
		t.Fatal(err)
	}
	if got, want := probeIn(t, m, c1), "null=ok zero=operation not permitted mknod=ok vcs=operation not permitted"; got != want {
		t.Errorf("after the update: %q, want %q", got, want)
	}
}
