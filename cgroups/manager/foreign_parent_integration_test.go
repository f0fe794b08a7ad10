package manager_test

import (
	"os"
	"testing"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

// TestHostForeignEmptyCpusetParent puts a container below a parent that
// someone else made with a plain mkdir, whose v1 cpuset is therefore empty:
// the kernel refused the container's tasks (ENOSPC) until every empty level
// took the cpus and mems of its nearest ancestor that has them.
func TestHostForeignEmptyCpusetParent(t *testing.T) {
	m := openHost(t)
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	root := testRoot(t, m)
	for _, mnt := range mountpoints(host) {
		for _, cg := range []string{root, root + "/foreign"} {
			if err := os.Mkdir(mnt+cg, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	cs := host.V1Controllers()["cpuset"]
	if cs != "" {
		if cpus, err := os.ReadFile(cs + root + "/foreign/cpuset.cpus"); err != nil || len(cpus) > 1 {
			t.Fatalf("a plain mkdir made cpuset.cpus %q, %v; want it empty (cgroup.clone_children set?)", cpus, err)
		}
	}
	c := root + "/foreign/pod/ctr"
	if err := m.Create(c, nil); err != nil {
		t.Fatal(err)
	}
	sleep := cgroupstest.SleepIn(t, m, c)
	if !cgroupstest.InCgroup(sleep.Process.Pid, c) {
		t.Fatalf("sleep is not in %s", c)
	}
	if cs == "" {
		t.Logf("no v1 cpuset hierarchy (%s): nothing to inherit", host.Mode)
		return
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		want := cgroupstest.HostFile(t, host, "cpuset", "", f)
		for _, cg := range []string{root, root + "/foreign", root + "/foreign/pod", c} {
			if got := cgroupstest.HostFile(t, host, "cpuset", cg, f); got != want {
				t.Errorf("%s %s = %q, want the root's %q", cg, f, got, want)
			}
		}
	}
}
