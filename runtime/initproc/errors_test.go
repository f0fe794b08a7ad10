package initproc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// TestErrors checks that each failure reaches the launcher as a typed
// Error with its step and path, before Ready (so before the container is
// reported started), and that nothing stays mounted on the host.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	// An image whose /proc is a symlink to /etc.
	evil := busyboxRootfs(t, filepath.Join(dir, "evil"))
	os.Remove(filepath.Join(evil, "proc"))
	os.Symlink("/etc", filepath.Join(evil, "proc"))

	tests := []struct {
		name     string
		mutate   func(cfg *initmsg.Config)
		step     string
		path     string
		errno    syscall.Errno
		contains string
	}{{
		name:     "missing command",
		mutate:   func(c *initmsg.Config) { c.Spec.Process.Args = []string{"nosuchcmd"} },
		step:     "exec",
		path:     "nosuchcmd",
		contains: `exec: "nosuchcmd": executable file not found in $PATH`,
	}, {
		name:   "missing absolute command",
		mutate: func(c *initmsg.Config) { c.Spec.Process.Args = []string{"/bin/nosuchcmd"} },
		step:   "exec", path: "/bin/nosuchcmd", errno: unix.ENOENT,
		contains: `exec: "/bin/nosuchcmd": stat /bin/nosuchcmd: no such file or directory`,
	}, {
		name:   "missing rootfs",
		mutate: func(c *initmsg.Config) { c.Spec.Root.Path = filepath.Join(dir, "nope") },
		step:   "rootfs", path: filepath.Join(dir, "nope"), errno: unix.ENOENT,
	}, {
		name: "unknown filesystem type",
		mutate: func(c *initmsg.Config) {
			c.Spec.Mounts = append(c.Spec.Mounts, specs.Mount{Destination: "/x", Type: "nosuchfs", Source: "none"})
		},
		step: "mount", path: "/x", errno: unix.ENODEV, contains: "mount nosuchfs on /x",
	}, {
		name: "missing bind source",
		mutate: func(c *initmsg.Config) {
			c.Spec.Mounts = append(c.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/nonexistent/crib", Options: []string{"rbind"}})
		},
		step: "mount", path: "/nonexistent/crib", errno: unix.ENOENT,
	}, {
		name: "unsupported mount option",
		mutate: func(c *initmsg.Config) {
			c.Spec.Mounts = append(c.Spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: dir, Options: []string{"rbind", "idmap"}})
		},
		step: "mount", path: "/data", contains: "not supported",
	}, {
		name:   "proc through a symlink",
		mutate: func(c *initmsg.Config) { c.Spec.Root.Path = evil },
		step:   "mount", path: "/proc", errno: unix.ELOOP,
	}, {
		name:   "cwd is a file",
		mutate: func(c *initmsg.Config) { c.Spec.Process.Cwd = "/bin/busybox" },
		step:   "cwd", path: "/bin/busybox", errno: unix.ENOTDIR,
	}, {
		name:   "seccomp",
		mutate: func(c *initmsg.Config) { c.Spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"} },
		step:   "seccomp", contains: `unknown action "SCMP_ACT_MAYBE"`,
	}, {
		// No host loads this profile, and a host without AppArmor (this
		// one) refuses any: init must fail, never exec unconfined.
		name:   "apparmor profile not applied",
		mutate: func(c *initmsg.Config) { c.Spec.Process.ApparmorProfile = "crib-test-no-such-profile" },
		step:   "apparmor", contains: `apparmor: set profile "crib-test-no-such-profile" for exec`,
	}, {
		name:   "selinux label not applied",
		mutate: func(c *initmsg.Config) { c.Spec.Process.SelinuxLabel = "crib_test_u:no_r:no_t:s0" },
		step:   "selinux", contains: `selinux: set exec label "crib_test_u:no_r:no_t:s0"`,
	}, {
		name:   "mount label without selinux",
		mutate: func(c *initmsg.Config) { c.Spec.Linux.MountLabel = "crib_test_u:object_r:no_t:s0" },
		step:   mountLabelStep, contains: mountLabelSays,
	}, {
		name: "terminal without devpts",
		mutate: func(c *initmsg.Config) {
			c.Spec.Process.Terminal = true
			c.Spec.Mounts = slices.DeleteFunc(c.Spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/pts" })
		},
		step: "terminal", path: "/dev/ptmx", contains: "open pty master",
	}, {
		name:   "hostname without uts namespace",
		mutate: func(c *initmsg.Config) { c.Spec.Linux.Namespaces = c.Spec.Linux.Namespaces[:3] },
		step:   "hostname", contains: "no uts namespace",
	}, {
		name:   "host sysctl",
		mutate: func(c *initmsg.Config) { c.Spec.Linux.Sysctl = map[string]string{"kernel.panic": "1"} },
		step:   "sysctl", path: "/proc/sys/kernel/panic", contains: "not a namespaced sysctl",
	}, {
		name:   "sysctl climbing out",
		mutate: func(c *initmsg.Config) { c.Spec.Linux.Sysctl = map[string]string{"net.//.//.etc": "1"} },
		step:   "sysctl", contains: "invalid name",
	}, {
		name: "unknown capability",
		mutate: func(c *initmsg.Config) {
			c.Spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_NOPE"}}
		},
		step: "capabilities", contains: `unknown capability "CAP_NOPE"`,
	}, {
		name:   "unknown rlimit",
		mutate: func(c *initmsg.Config) { c.Spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}} },
		step:   "rlimit", contains: "RLIMIT_NOPE",
	}, {
		name: "seccomp profile and compiled filter",
		mutate: func(c *initmsg.Config) {
			c.Spec.Linux.Seccomp = denyMkdir()
			c.Seccomp = &initmsg.SeccompFilter{Program: make([]byte, 8)}
		},
		step: "seccomp", contains: "both a seccomp profile and a compiled filter",
	}, {
		name:   "compiled filter cut short",
		mutate: func(c *initmsg.Config) { c.Seccomp = &initmsg.SeccompFilter{Program: make([]byte, 12)} },
		step:   "seccomp", contains: "seccomp filter of 12 bytes",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := initmsg.Config{Spec: baseSpec(rootfs, "echo must-not-run")}
			tt.mutate(&cfg)
			res := runInit(t, cfg, newNS)
			if res.ready || res.err == nil {
				t.Fatalf("want an error before ready, got %+v", res)
			}
			e := res.err
			if e.Step != tt.step || (tt.path != "" && e.Path != tt.path) ||
				(tt.errno != 0 && e.Errno != int(tt.errno)) || !strings.Contains(e.Msg, tt.contains) {
				t.Errorf("got %+v\nwant step %q path %q errno %d message containing %q",
					*e, tt.step, tt.path, tt.errno, tt.contains)
			}
			if res.exitCode != 1 || strings.Contains(res.stdout, "must-not-run") {
				t.Errorf("init exit %d, stdout %q", res.exitCode, res.stdout)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(evil, "etc")); len(entries) != 1 {
		t.Errorf("procfs landed on the image's /etc: %v", entries)
	}
}

// TestExecFailsAfterStart: a command that resolves but cannot be executed
// (no ELF, no #!) is reported with step exec after Start.
func TestExecFailsAfterStart(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	if err := os.WriteFile(filepath.Join(rootfs, "bin/notelf"), []byte("garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec(rootfs, "")
	spec.Process.Args = []string{"notelf"}
	res := runInit(t, initmsg.Config{Spec: spec}, newNS)
	if !res.ready || res.err == nil || res.err.Step != "exec" || res.err.Path != "notelf" || res.err.Errno != int(unix.ENOEXEC) {
		t.Fatalf("got %+v, want a ready container whose exec fails with ENOEXEC", res)
	}
}

// TestExecRoleMissingCwd: in role exec nothing creates the cwd.
func TestExecRoleMissingCwd(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{
		Args: []string{"/bin/busybox", "true"},
		Cwd:  "/nonexistent/crib-cwd",
	}}
	res := runInit(t, initmsg.Config{Role: initmsg.RoleExec, Spec: spec}, unix.CLONE_NEWNS)
	if res.ready || res.err == nil || res.err.Step != "cwd" || res.err.Path != "/nonexistent/crib-cwd" || res.err.Errno != int(unix.ENOENT) {
		t.Fatalf("got %+v, want a cwd error", res)
	}
}
