package initproc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/lsm"
)

func TestWithMountLabel(t *testing.T) {
	const label = "system_u:object_r:container_file_t:s0:c1,c2"
	for _, tc := range []struct {
		typ   string
		label string
		want  []string
	}{
		{"tmpfs", label, []string{"mode=755", `context="` + label + `"`}},
		{"devpts", label, []string{"mode=755", `context="` + label + `"`}},
		{"proc", label, []string{"mode=755"}},
		{"sysfs", label, []string{"mode=755"}},
		{"mqueue", label, []string{"mode=755"}},
		{"cgroup2", label, []string{"mode=755"}},
		{"tmpfs", "", []string{"mode=755"}},
	} {
		data := []string{"mode=755"}
		if got := withMountLabel(data, tc.typ, tc.label); !slices.Equal(got, tc.want) {
			t.Errorf("%s, label %q: %q, want %q", tc.typ, tc.label, got, tc.want)
		}
		if len(data) != 1 {
			t.Fatal("withMountLabel changed its argument")
		}
	}
}

// TestApplyLSM writes the spec's profile and label to a fake procfs.
func TestApplyLSM(t *testing.T) {
	dir := t.TempDir()
	attr := filepath.Join(dir, "thread-self/attr")
	if err := os.MkdirAll(filepath.Join(attr, "apparmor"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"exec", "keycreate", "apparmor/exec"} {
		if err := os.WriteFile(filepath.Join(attr, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc := lsm.Proc{Dir: dir, Fake: true}
	if err := applyLSM(&specs.Process{}, proc); err != nil {
		t.Fatalf("nothing asked: %v", err)
	}
	for _, f := range []string{"exec", "keycreate", "apparmor/exec"} {
		if b, _ := os.ReadFile(filepath.Join(attr, f)); len(b) != 0 {
			t.Errorf("nothing asked, yet %s = %q", f, b)
		}
	}
	p := &specs.Process{ApparmorProfile: "crib-default", SelinuxLabel: "u:r:t:s0"}
	if err := applyLSM(p, proc); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"apparmor/exec": "exec crib-default", "exec": "u:r:t:s0", "keycreate": "u:r:t:s0"} {
		if b, _ := os.ReadFile(filepath.Join(attr, f)); string(b) != want {
			t.Errorf("%s = %q, want %q", f, b, want)
		}
	}
	// On a real init the fake tree is not a procfs: refused, with the step.
	err := applyLSM(p, lsm.Proc{Dir: dir})
	msg := errMessage(err)
	if err == nil || msg.Step != stepAppArmor {
		t.Errorf("not a procfs: %v (step %q), want an apparmor step error", err, msg.Step)
	}
}

// On a host with SELinux, a label this policy lacks fails at the mount;
// without, init refuses the label before mounting anything.
var mountLabelStep, mountLabelSays = func() (string, string) {
	if (lsm.Host{}).SELinuxEnabled() {
		return stepMount, "mount"
	}
	return stepSELinux, "SELinux is not enabled on this host"
}()
