package cgroupstest

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// InCgroup reports whether /proc says pid is in cgroup path (in any
// hierarchy).
func InCgroup(pid int, path string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	return err == nil && strings.Contains(string(b), ":"+path+"\n")
}
