package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ShimPid finds the shim of a pod by its command line (crib-shim shim --id
// <pod id>), failing the test when none runs.
func ShimPid(t testing.TB, podID string) int {
	t.Helper()
	pid := FindShim(podID)
	if pid == 0 {
		t.Fatalf("no shim runs for pod %s", podID)
	}
	return pid
}

// FindShim is the pid of a pod's shim, 0 when none runs.
func FindShim(podID string) int {
	found := shims(func(args []string) bool { return len(args) > 3 && args[2] == "--id" && args[3] == podID })
	if len(found) == 0 {
		return 0
	}
	return found[0].pid
}

// shimProc is a running shim: its pid and command line.
type shimProc struct {
	pid  int
	args []string
}

// shims lists the running shims (crib-shim shim ...) whose command line
// match accepts.
func shims(match func(args []string) bool) []shimProc {
	var out []shimProc
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) < 2 || args[1] != "shim" || !match(args) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			out = append(out, shimProc{pid, args})
		}
	}
	return out
}
