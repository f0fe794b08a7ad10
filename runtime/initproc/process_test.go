package initproc

import (
	"fmt"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// statusField returns a field of /proc/self/status output.
func statusField(status, key string) string {
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestProcessIdentity runs as a non-root user with supplementary groups,
// no_new_privs, one ambient capability, rlimits, a cwd the image lacks
// (created, as runc does), the spec's environment and a umask.
func TestProcessIdentity(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, `echo "== id"; id
echo "== status"; cat /proc/self/status
echo "== nofile"; ulimit -n; ulimit -Hn
echo "== cwd"; pwd
echo "== env"; echo "$FOO $HOME"
echo "== umask"; umask
echo "== end"`)
	umask := uint32(0o027)
	spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 20}, Umask: &umask}
	spec.Process.NoNewPrivileges = true
	nbs := []string{"CAP_NET_BIND_SERVICE"}
	spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding:  []string{"CAP_NET_BIND_SERVICE", "CAP_CHOWN"},
		Effective: nbs, Permitted: nbs, Inheritable: nbs, Ambient: nbs,
	}
	spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}}
	spec.Process.Cwd = "/work/dir"
	spec.Process.Env = append(spec.Process.Env, "FOO=bar")
	out := mustRun(t, initmsg.Config{Spec: spec})

	id := section(out, "id")
	for _, want := range []string{"uid=1000", "gid=1000", "groups=10,20"} {
		if !strings.Contains(id, want) {
			t.Errorf("id = %q, want %s", id, want)
		}
	}
	status := section(out, "status")
	for key, want := range map[string]string{
		"NoNewPrivs": "1",
		"CapInh":     "0000000000000400", "CapPrm": "0000000000000400",
		"CapEff": "0000000000000400", "CapBnd": "0000000000000401",
		"CapAmb": "0000000000000400",
	} {
		if got := statusField(status, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	for name, want := range map[string]string{
		"nofile": "512\n1024\n", "cwd": "/work/dir\n", "env": "bar /home/user\n", "umask": "0027\n",
	} {
		if got := section(out, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// TestRootCapabilities: root keeps exactly the spec's sets, and without
// no_new_privs the bit stays clear.
func TestRootCapabilities(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, `cat /proc/self/status`)
	set := []string{"CAP_CHOWN", "CAP_KILL"}
	spec.Process.Capabilities = &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
	out := mustRun(t, initmsg.Config{Spec: spec})
	for key, want := range map[string]string{
		"NoNewPrivs": "0", "CapEff": "0000000000000021", "CapPrm": "0000000000000021",
		"CapBnd": "0000000000000021", "CapInh": "0000000000000000", "CapAmb": "0000000000000000",
	} {
		if got := statusField(out, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// windowEnv makes the child init report, on stderr, its thread's
// permitted set between the uid change and PR_SET_DUMPABLE.
const windowEnv = "_CRIB_INITPROC_TEST_WINDOW"

// reportWindow is uidChanged in the child of TestUserWithoutCapabilities.
func reportWindow() {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		fmt.Fprintf(os.Stderr, "window: %v\n", err)
		return
	}
	fmt.Fprintf(os.Stderr, "window: CapPrm=%s CapBnd=%s\n", statusField(string(b), "CapPrm"), statusField(string(b), "CapBnd"))
}

// TestUserWithoutCapabilities: a spec with a user but no capabilities
// (run-oci; CRI always sends a set) ends with none, as the uid change
// leaves them, but the thread keeps root's permitted set across the change
// until it is non-dumpable again: without it, on a host whose
// fs.suid_dumpable is not 0, a process of the user could ptrace the
// thread in that instant and reach the root threads' memory.
func TestUserWithoutCapabilities(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, `cat /proc/self/status`)
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	spec.Process.Capabilities = nil
	t.Setenv(windowEnv, "1")
	res := runInit(t, initmsg.Config{Spec: spec}, newNS)
	if !res.ready || res.err != nil || res.exitCode != 0 {
		t.Fatalf("ready %v, error %v, exit %d\nstdout:\n%s\nstderr:\n%s", res.ready, res.err, res.exitCode, res.stdout, res.stderr)
	}
	// Root's whole permitted set, which a ptracer would need: the bounding
	// set, which a spec without capabilities leaves as it was.
	var prm, bnd string
	if _, err := fmt.Sscanf(res.stderr, "window: CapPrm=%s CapBnd=%s", &prm, &bnd); err != nil || prm != bnd || prm == "0000000000000000" {
		t.Errorf("sets between the uid change and non-dumpable: %q, want root's whole permitted set", res.stderr)
	}
	for key, want := range map[string]string{
		"Uid": "1000\t1000\t1000\t1000", "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
		"CapInh": "0000000000000000", "CapAmb": "0000000000000000",
	} {
		if got := statusField(res.stdout, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

// TestSysctls writes namespaced sysctls before /proc/sys becomes
// read-only, in the container's own net and ipc namespaces.
func TestSysctls(t *testing.T) {
	rootfs := busyboxRootfs(t, t.TempDir())
	spec := baseSpec(rootfs, `cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced`)
	spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
	spec.Linux.ReadonlyPaths = []string{"/proc/sys"}
	out := mustRun(t, initmsg.Config{Spec: spec})
	if out != "1\n1\n" {
		t.Errorf("sysctls read back %q", out)
	}
}

// TestExecRole joins "a running container" (here: the host's root in a
// new mount namespace): only the process settings apply.
func TestExecRole(t *testing.T) {
	spec := &specs.Spec{Process: &specs.Process{
		Args: []string{"/bin/busybox", "sh", "-c", "/bin/busybox id -u; /bin/busybox pwd"},
		Env:  []string{"PATH=/bin"},
		Cwd:  "/tmp",
		User: specs.User{UID: 1000, GID: 1000},
	}}
	res := runInit(t, initmsg.Config{Role: initmsg.RoleExec, Spec: spec}, unix.CLONE_NEWNS)
	if !res.ready || res.err != nil || res.exitCode != 0 || res.stdout != "1000\n/tmp\n" {
		t.Fatalf("exec role: %+v", res)
	}
}
