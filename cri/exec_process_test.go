package cri

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/runtime"
)

// TestExecProcessConfinement: an exec runs under its container's AppArmor
// profile and SELinux label, so an exec is no way out of them.
func TestExecProcessConfinement(t *testing.T) {
	st := runtime.State{Container: runtime.Container{Process: &specs.Process{
		Cwd: "/w", ApparmorProfile: "crib-default", SelinuxLabel: "system_u:system_r:container_t:s0:c1,c2",
	}}}
	p := execProcess(st, []string{"sh"})
	if p.ApparmorProfile != "crib-default" || p.SelinuxLabel != "system_u:system_r:container_t:s0:c1,c2" || p.Cwd != "/w" {
		t.Errorf("exec process: apparmor %q, selinux %q, cwd %q", p.ApparmorProfile, p.SelinuxLabel, p.Cwd)
	}
}
