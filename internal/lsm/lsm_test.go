package lsm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree writes files (path → content) under a new temp root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(p, "/") {
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestAppArmorEnabled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"enabled", map[string]string{"sys/module/apparmor/parameters/enabled": "Y\n", "sys/kernel/security/apparmor/profiles": ""}, true},
		{"module disabled", map[string]string{"sys/module/apparmor/parameters/enabled": "N\n", "sys/kernel/security/apparmor/profiles": ""}, false},
		{"no securityfs", map[string]string{"sys/module/apparmor/parameters/enabled": "Y\n"}, false},
		{"no module", map[string]string{"sys/kernel/security/apparmor/profiles": ""}, false},
		{"nothing", nil, false},
	} {
		if got := (Host{Root: tree(t, tc.files)}).AppArmorEnabled(); got != tc.want {
			t.Errorf("%s: AppArmorEnabled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestAppArmorLoaded(t *testing.T) {
	h := Host{Root: tree(t, map[string]string{"sys/kernel/security/apparmor/profiles": "crib-default (enforce)\n" +
		"/usr/bin/man (enforce)\nwith space (complain)\nlocalhost-ish (kill)\n"})}
	for name, want := range map[string]bool{
		"crib-default": true, "/usr/bin/man": true, "with space": true, "localhost-ish": true,
		"crib": false, "crib-default (enforce)": false, "": false, "enforce": false,
	} {
		got, err := h.AppArmorLoaded(name)
		if err != nil || got != want {
			t.Errorf("AppArmorLoaded(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := (Host{Root: t.TempDir()}).AppArmorLoaded("x"); !errors.Is(err, ErrNotEnabled) {
		t.Errorf("AppArmorLoaded without securityfs: %v, want ErrNotEnabled", err)
	}
}

func TestSELinuxEnabled(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"sysfs", map[string]string{"sys/fs/selinux/enforce": "1"}, true},
		{"legacy", map[string]string{"selinux/enforce": "0"}, true},
		{"nothing", map[string]string{"sys/fs/": ""}, false},
	} {
		if got := (Host{Root: tree(t, tc.files)}).SELinuxEnabled(); got != tc.want {
			t.Errorf("%s: SELinuxEnabled = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// fakeProc is a procfs stand-in whose attr files are plain files.
func fakeProc(t *testing.T, apparmorDir bool) string {
	t.Helper()
	files := map[string]string{"thread-self/attr/exec": "", "thread-self/attr/keycreate": "", "thread-self/attr/sockcreate": ""}
	if apparmorDir {
		files["thread-self/attr/apparmor/exec"] = ""
	}
	return tree(t, files)
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSetAppArmorExec(t *testing.T) {
	dir := fakeProc(t, true)
	if err := (Proc{Dir: dir, Fake: true}).SetAppArmorExec("crib-default"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "thread-self/attr/apparmor/exec")); got != "exec crib-default" {
		t.Errorf("attr/apparmor/exec = %q", got)
	}
	if got := read(t, filepath.Join(dir, "thread-self/attr/exec")); got != "" {
		t.Errorf("attr/exec = %q, want it untouched when attr/apparmor exists", got)
	}
	// Kernels before 5.8 have only the shared attr/exec.
	old := fakeProc(t, false)
	if err := (Proc{Dir: old, Fake: true}).SetAppArmorExec("p"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(old, "thread-self/attr/exec")); got != "exec p" {
		t.Errorf("old kernel: attr/exec = %q", got)
	}
	for _, bad := range []string{"", "a\nchangeprofile b", "a\x00"} {
		if err := (Proc{Dir: dir, Fake: true}).SetAppArmorExec(bad); err == nil {
			t.Errorf("SetAppArmorExec(%q): no error", bad)
		}
	}
}

func TestSetSELinuxExec(t *testing.T) {
	dir := fakeProc(t, false)
	const label = "system_u:system_r:container_t:s0:c1,c2"
	if err := (Proc{Dir: dir, Fake: true}).SetSELinuxExec(label); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"exec", "keycreate"} {
		if got := read(t, filepath.Join(dir, "thread-self/attr", a)); got != label {
			t.Errorf("attr/%s = %q, want %q", a, got, label)
		}
	}
	if err := (Proc{Dir: dir, Fake: true}).SetSELinuxExec(""); err == nil {
		t.Error("SetSELinuxExec(\"\"): no error")
	}
}

// TestProcRefusesImpostors: the write must reach procfs's own attr file,
// never a file a container put in its place (runc CVE-2019-16884).
func TestProcRefusesImpostors(t *testing.T) {
	// A directory that is not a procfs.
	dir := fakeProc(t, true)
	if err := (Proc{Dir: dir}).SetAppArmorExec("p"); err == nil || !strings.Contains(err.Error(), "not a procfs") {
		t.Errorf("attr files on a tmpfs: %v, want \"not a procfs\"", err)
	}
	// A symlink in place of the attr file.
	link := fakeProc(t, false)
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(link, "thread-self/attr/exec")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	if err := (Proc{Dir: link, Fake: true}).SetSELinuxExec("l"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("symlinked attr/exec: %v, want ELOOP", err)
	}
	if got := read(t, target); got != "" {
		t.Errorf("the symlink's target was written: %q", got)
	}
}

// TestProcOnThisHost: the real procfs passes the check, and a kernel
// without the module refuses the write, so init cannot silently run a
// process unconfined. Hosts with AppArmor (or SELinux) skip the part that
// expects the refusal.
func TestProcOnThisHost(t *testing.T) {
	host := Host{}
	err := (Proc{Dir: "/proc"}).SetAppArmorExec("crib-test-no-such-profile")
	if err == nil {
		t.Fatal("SetAppArmorExec of a profile no host loads: no error")
	}
	if strings.Contains(err.Error(), "not a procfs") {
		t.Fatalf("/proc refused as not a procfs: %v", err)
	}
	if !host.AppArmorEnabled() && !host.SELinuxEnabled() &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		t.Errorf("SetAppArmorExec without an LSM: %v, want EINVAL or ENOENT", err)
	}
}
