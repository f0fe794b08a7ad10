package initproc

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/seccomp"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// denyMkdir fails mkdir with EXDEV ("Cross-device link", which nothing
// else here would return), and denies what init itself does before
// execve: the filter must be loaded after all of it.
func denyMkdir() *specs.LinuxSeccomp {
	exdev := uint(unix.EXDEV)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &exdev},
			{Names: []string{
				"mount", "pivot_root", "sethostname", "chdir", "fchdir", "openat2",
				"setgroups", "setresuid", "setresgid", "setuid", "setgid", "prctl",
				"close_range", "mknodat", "symlinkat", "umount2",
			}, Action: specs.ActErrno},
			{Names: []string{"not_a_system_call"}, Action: specs.ActAllow},
		},
	}
}

const seccompScript = `echo "== status"; cat /proc/self/status
echo "== mkdir"; mkdir /tmp/x 2>&1; test -d /tmp/x && echo made
echo "== end"`

func checkFiltered(t *testing.T, out string) {
	t.Helper()
	if got := statusField(section(out, "status"), "Seccomp"); got != "2" {
		t.Errorf("Seccomp = %q, want 2 (filter)", got)
	}
	if m := section(out, "mkdir"); !strings.Contains(m, "ross-device link") || strings.Contains(m, "made") {
		t.Errorf("mkdir under the filter: %q, want EXDEV", m)
	}
}

// With no_new_privs and an unprivileged user, the filter is loaded just
// before execve: init's own mount, pivot_root, chdir, set*id and prctl
// calls, denied by the profile, still ran.
func TestSeccompWithNoNewPrivs(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, seccompScript)
	spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10}}
	spec.Process.NoNewPrivileges = true
	spec.Process.Cwd = "/tmp"
	spec.Process.Capabilities = &specs.LinuxCapabilities{}
	spec.Linux.Seccomp = denyMkdir()
	out := mustRun(t, initmsg.Config{Spec: spec})
	checkFiltered(t, out)
	if got := statusField(section(out, "status"), "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", got)
	}
}

// A filter its launcher compiled (a shim's, for an exec) is loaded as
// the profile would be.
func TestSeccompCompiledByLauncher(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, seccompScript)
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	spec.Process.NoNewPrivileges = true
	spec.Process.Cwd = "/tmp"
	spec.Process.Capabilities = &specs.LinuxCapabilities{}
	f, err := seccomp.Compile(denyMkdir())
	if err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, initmsg.Config{Spec: spec, Seccomp: initmsg.NewSeccompFilter(f.Program, f.Flags)})
	checkFiltered(t, out)
}

// Without no_new_privs, loading needs CAP_SYS_ADMIN: init keeps it only
// until the filter is in, so neither root nor a user ends up with it,
// and no_new_privs stays clear. (A user other than root loses the
// permitted set at execve, as it would without a filter.)
func TestSeccompWithoutNoNewPrivs(t *testing.T) {
	for _, uid := range []uint32{0, 1000} {
		rootfs := busyboxRootfs(t, t.TempDir())
		spec := baseSpec(rootfs, seccompScript)
		spec.Process.User = specs.User{UID: uid, GID: uid}
		set := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE"}
		spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
		spec.Linux.Seccomp = denyMkdir()
		// capset must pass for the final drop of CAP_SYS_ADMIN.
		out := mustRun(t, initmsg.Config{Spec: spec})
		checkFiltered(t, out)
		status := section(out, "status")
		caps := "0000000000000003"
		if uid != 0 {
			caps = "0000000000000000"
		}
		for key, want := range map[string]string{"NoNewPrivs": "0", "CapEff": caps, "CapPrm": caps, "CapBnd": "0000000000000003"} {
			if got := statusField(status, key); got != want {
				t.Errorf("uid %d: %s = %q, want %q", uid, key, got, want)
			}
		}
	}
}

// The exec role loads the filter it is given (the container's).
func TestSeccompExecRole(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{
		Args: []string{"/bin/busybox", "sh", "-c", "/bin/busybox grep Seccomp: /proc/self/status; /bin/busybox mkdir /tmp/crib-seccomp-exec-test 2>&1"},
		Env:  []string{"PATH=/bin"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1000},
		// What cri/ copies from the container's process.
		Capabilities: &specs.LinuxCapabilities{},
	}, Linux: &specs.Linux{Seccomp: denyMkdir()}}
	res := runInit(t, initmsg.Config{Role: initmsg.RoleExec, Spec: spec}, unix.CLONE_NEWNS)
	if !res.ready || res.err != nil {
		t.Fatalf("exec role: %+v", res)
	}
	if !strings.Contains(res.stdout, "Seccomp:\t2") || !strings.Contains(res.stdout, "ross-device link") {
		t.Fatalf("exec role output %q: want the filter, and mkdir failing with EXDEV", res.stdout)
	}
}

// A compiled filter comes only in a config of version 2: an init that
// predates the field refuses that version instead of running the process
// unfiltered, and this one refuses a filter sent as version 1.
func TestCompiledFilterNeedsItsVersion(t *testing.T) {
	cfg := &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleExec,
		Spec:    &specs.Spec{Process: &specs.Process{Args: []string{"true"}}},
		Seccomp: &initmsg.SeccompFilter{Program: make([]byte, 8)}}
	if err := validate(cfg); err == nil || !strings.Contains(err.Error(), "needs version 2") {
		t.Errorf("a compiled filter in a version 1 config: %v", err)
	}
	cfg.Version = initmsg.VersionSeccompFilter
	if err := validate(cfg); err != nil {
		t.Errorf("a compiled filter in a version 2 config: %v", err)
	}
}
