package initproc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// TestContainerHooks: the init runs createContainer hooks in the
// container's namespaces before pivot_root (host paths, the rootfs as
// working directory, the container's mounts under the rootfs path) and
// startContainer hooks after pivot_root, once the launcher said Start and
// before the user's process: the process sees what the hook wrote.
func TestContainerHooks(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	state := specs.State{Version: specs.Version, ID: "c1", Bundle: "/bundle", Annotations: map[string]string{"a": "b"}}
	cfg := initmsg.Config{Spec: baseSpec(rootfs, "cat /started"), Hooks: &initmsg.Hooks{
		CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			`cat > "$1/state"; echo "$(pwd) $(grep -c " $(pwd)/proc " /proc/self/mountinfo) $(cat /proc/sys/kernel/hostname)" > "$1/cc"`, "hook", out}}},
		StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", `echo "started on $(cat /proc/sys/kernel/hostname)" > /started`}}},
		State:          state,
	}}
	got := mustRun(t, cfg)
	if got != "started on crib-test\n" {
		t.Errorf("the process saw %q, want what the startContainer hook wrote", got)
	}
	cc, _ := os.ReadFile(filepath.Join(out, "cc"))
	// Before pivot_root: the host's path, /proc mounted under it, the
	// hostname not set yet (a fresh uts namespace has the host's).
	hostname, _ := os.Hostname()
	if f := strings.Fields(string(cc)); len(f) != 3 || f[0] != rootfs || f[1] != "1" || f[2] != hostname {
		t.Errorf("createContainer: cwd, mounts of the rootfs' /proc, hostname %q, want %s 1 %s", cc, rootfs, hostname)
	}
	var st specs.State
	if b, err := os.ReadFile(filepath.Join(out, "state")); err != nil || json.Unmarshal(b, &st) != nil ||
		st.ID != "c1" || st.Status != specs.StateCreating || st.Pid != 1 || st.Bundle != "/bundle" || st.Annotations["a"] != "b" {
		t.Errorf("createContainer's state %+v (%v)", st, err)
	}
}

// TestFailingContainerHooks: a failing createContainer hook is an error
// before Ready, a failing startContainer hook one after Start; either
// names the hook and its output, and the process never runs.
func TestFailingContainerHooks(t *testing.T) {
	rootfs := busyboxRootfs(t, filepath.Join(t.TempDir(), "rootfs"))
	fails := []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-said-no; exit 2"}}}
	for _, tc := range []struct {
		name  string
		hooks initmsg.Hooks
		ready bool
		want  string
	}{
		{"createContainer", initmsg.Hooks{CreateContainer: fails}, false, "createContainer hook #0: hook /bin/sh: exit status 2: output: hook-said-no"},
		{"startContainer", initmsg.Hooks{StartContainer: fails}, true, "startContainer hook #0: hook /bin/sh: exit status 2: output: hook-said-no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runInit(t, initmsg.Config{Spec: baseSpec(rootfs, "echo must-not-run"), Hooks: &tc.hooks}, newNS)
			if res.ready != tc.ready || res.err == nil || res.err.Step != stepHooks || res.err.Path != "/bin/sh" || !strings.Contains(res.err.Msg, tc.want) {
				t.Fatalf("got ready %v, %+v; want ready %v and the hook's error %q", res.ready, res.err, tc.ready, tc.want)
			}
			if res.exitCode != 1 || strings.Contains(res.stdout, "must-not-run") {
				t.Errorf("init exit %d, stdout %q", res.exitCode, res.stdout)
			}
		})
	}
}

// An init handed hooks under an older version, or for an exec, refuses.
func TestHooksNeedVersionAndRole(t *testing.T) {
	spec := baseSpec("/r", "true")
	for _, cfg := range []initmsg.Config{
		{Version: initmsg.VersionSeccompFilter, Role: initmsg.RoleInit, Spec: spec, Hooks: &initmsg.Hooks{}},
		{Version: initmsg.VersionHooks, Role: initmsg.RoleExec, Spec: spec, Hooks: &initmsg.Hooks{}},
		{Version: initmsg.VersionHooks + 1, Role: initmsg.RoleInit, Spec: spec},
	} {
		if err := validate(&cfg); err == nil {
			t.Errorf("validate(version %d, role %s, hooks %v): no error", cfg.Version, cfg.Role, cfg.Hooks != nil)
		}
	}
	if err := validate(&initmsg.Config{Version: initmsg.VersionHooks, Role: initmsg.RoleInit, Spec: spec, Hooks: &initmsg.Hooks{}}); err != nil {
		t.Errorf("validate of a version 3 config with hooks: %v", err)
	}
}

// A startContainer hook runs under the container's seccomp filter, as in
// runc: its path is the image's to fill, so it is the container's code.
func TestStartContainerHookUnderSeccomp(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, "cat /hook")
	spec.Process.NoNewPrivileges = true
	spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}}
	cfg := initmsg.Config{Spec: spec, Hooks: &initmsg.Hooks{
		StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", `if mkdir /hookdir 2>/dev/null; then echo unconfined; else echo confined; fi > /hook`}}},
	}}
	if got := mustRun(t, cfg); got != "confined\n" {
		t.Errorf("the startContainer hook was %q, want confined by the container's filter", got)
	}
}
