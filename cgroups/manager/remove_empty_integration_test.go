package manager_test

import (
	"testing"

	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

// TestHostRemoveEmpty: RemoveEmpty leaves a cgroup that a process or a
// child cgroup uses, and the process alive; it removes an unused one and
// takes a missing one as removed. A pod's parents crib made are removed
// this way, since someone else (logind's sessions) may live there since.
func TestHostRemoveEmpty(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	busy, child := root+"/busy", root+"/busy/session"
	if err := m.Create(child, nil); err != nil {
		t.Fatal(err)
	}
	sleep := cgroupstest.SleepIn(t, m, child)
	for _, p := range []string{busy, child} {
		if removed, err := m.RemoveEmpty(p); removed || err != nil {
			t.Errorf("RemoveEmpty(%s) = %v, %v; want false, nil", p, removed, err)
		}
	}
	if !cgroupstest.InCgroup(sleep.Process.Pid, child) {
		t.Errorf("the process was killed or left %s", child)
	}
	sleep.Process.Kill()
	sleep.Wait()
	for _, p := range []string{child, busy, busy} {
		if removed, err := m.RemoveEmpty(p); !removed || err != nil {
			t.Errorf("RemoveEmpty(%s) unused = %v, %v; want true, nil", p, removed, err)
		}
	}
	assertGone(t, busy)
}
