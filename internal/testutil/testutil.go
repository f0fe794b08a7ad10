// Package testutil holds helpers shared by crib's tests: privilege checks that
// skip with a reason, or fail under CRIB_TEST_STRICT=1 so a silent skip can
// never pass for a run.
//
// It imports only the standard library and must only be imported from tests.
// Internal to crib; no API compatibility promised.
package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Strict reports whether CRIB_TEST_STRICT=1 turns skips into failures.
func Strict() bool { return os.Getenv("CRIB_TEST_STRICT") == "1" }

// SkipOrFail skips the test with reason, or fails it in strict mode.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("CRIB_TEST_STRICT=1 and %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or fails in strict mode) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "test needs root")
	}
}

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// BusyboxRootfs makes a minimal rootfs in dir (created if missing): the
// usual top-level directories and /bin/busybox from busybox-static with a
// symlink per applet. It returns dir.
func BusyboxRootfs(t testing.TB, dir string, applets ...string) string {
	t.Helper()
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		SkipOrFail(t, "test needs "+BusyboxPath+" (busybox-static, hack/install-deps.sh)")
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// MountsUnder counts the mounts at or below dir in /proc/self/mountinfo.
// Packages' tests run in parallel, so only the test's own tree is counted.
func MountsUnder(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	for _, m := range mountPoints(t) {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			n++
		}
	}
	return n
}

// mountPoints lists the mount points of /proc/self/mountinfo, as written
// there (octal escapes kept).
func mountPoints(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 4 {
			points = append(points, fields[4])
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return points
}

// BuildBinaries builds crib's binaries into dir as `make build` does
// (hack/build.sh), all three or only those named.
func BuildBinaries(dir string, names ...string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return errors.New("go env GOMOD: not in crib's module")
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(mod), "hack", "build.sh"), dir)
	cmd.Env = append(os.Environ(), "CRIB_BUILD_NAMES="+strings.Join(names, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hack/build.sh: %w\n%s", err, out)
	}
	return nil
}
