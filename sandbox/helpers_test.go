package sandbox

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// mountsUnder counts the mounts at or below dir in /proc/self/mountinfo.
// Packages' tests run in parallel, so only the test's own tree is counted.
func mountsUnder(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			n++
		}
	}
	return n
}
