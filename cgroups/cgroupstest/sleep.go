package cgroupstest

import (
	"os/exec"
	"testing"
)

// SleepIn starts sleep(1) and moves it into cgroup path, which must
// exist: a process for tests of what kills, keeps or moves one. The
// test's cleanup kills it.
func SleepIn(t testing.TB, m interface{ AddProc(string, int) error }, path string) *exec.Cmd {
	t.Helper()
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	if err := m.AddProc(path, sleep.Process.Pid); err != nil {
		t.Fatalf("move pid %d into %s: %v", sleep.Process.Pid, path, err)
	}
	return sleep
}
