package launch_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// Regression tests for the class of runc's CVE-2024-21626 through the real
// path (nsexec, then the Go init): the cgroup v2 directory that
// clone3(CLONE_INTO_CGROUP) needs stayed open in init, so a working
// directory or command of /proc/self/fd/N/.. reached the host's cgroupfs
// and from there the host's /.

// v2Placement returns a placement with a cgroup v2 directory, as crib uses
// on cgroup v2: the manager's own on a v2 host, or on a hybrid host a
// directory this test makes (and removes) in the unified hierarchy, so the
// same fd is in play on both.
func v2Placement(t *testing.T, m manager.Manager, cg string) *cgroups.Placement {
	t.Helper()
	pl, err := m.Placement(cg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.Close() })
	if pl.Dir != nil {
		return pl
	}
	var st unix.Statfs_t
	const unified = "/sys/fs/cgroup/unified"
	if err := unix.Statfs(unified, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Fatalf("no cgroup v2 directory to clone into: the manager gives none and %s is not cgroup2 (%v)", unified, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	dir := filepath.Join(unified, "crib-test-fd-"+hex.EncodeToString(b))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		// The processes are killed and reaped by earlier cleanups; the
		// kernel drops them from the cgroup a moment later.
		for i := 0; ; i++ {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				return
			}
			if i == 50 {
				t.Errorf("remove %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	pl.Dir = f
	return pl
}

// initFds lists what a started (not yet exec'd) init holds above stdio.
func initFds(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range entries {
		if n, _ := strconv.Atoi(e.Name()); n <= 2 {
			continue
		}
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		fds[e.Name()] = target
	}
	return fds
}

// TestInitHoldsNoHostFd: once init is set up and waits for Start, it holds
// nothing but its stdio, the init socket and the log pipe (and the Go
// runtime's anonymous poller fds): no directory or file of the host, the
// cgroup v2 directory included.
func TestInitHoldsNoHostFd(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	pl := v2Placement(t, m, cg)
	p, err := launch.Start(context.Background(), launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS, Cgroup: pl,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: initSpec(busyboxRootfs(t), "/bin/true")}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait()
	}()
	for fd, target := range initFds(t, p.Pid) {
		if !strings.HasPrefix(target, "socket:") && !strings.HasPrefix(target, "pipe:") && !strings.HasPrefix(target, "anon_inode:") {
			t.Errorf("init holds fd %s -> %s", fd, target)
		}
	}
}

// TestProcSelfFdEscapeThroughLaunch tries /proc/self/fd/N/.. for every N
// the init could hold, as working directory and as command, for a new
// container (role init) and for an exec into a running one (role exec),
// both born in a cgroup v2 directory whose fd nsexec received.
func TestProcSelfFdEscapeThroughLaunch(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	pl := v2Placement(t, m, cg)
	root := busyboxRootfs(t)
	ctr := startInit(t, launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
		Place:  func(pid int) error { return m.AddProc(cg, pid) },
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: initSpec(root, "/bin/sleep", "600")}})
	// What a container that got out would print: the cgroupfs it landed
	// in, or the host's / above it.
	const probe = "ls; ls ..; ls ../..; ls ../../../.."
	for _, role := range []string{initmsg.RoleInit, initmsg.RoleExec} {
		for n := 0; n <= 20; n++ {
			fd := "/proc/self/fd/" + strconv.Itoa(n)
			for _, tc := range []struct{ name, cwd, arg0, step string }{
				{"cwd", fd + "/..", "/bin/sh", "cwd"},
				{"command", "/", fd + "/../../../../../../bin/sh", "exec"},
			} {
				t.Run(role+"/"+tc.name+"/"+strconv.Itoa(n), func(t *testing.T) {
					out, err := os.CreateTemp(t.TempDir(), "out")
					if err != nil {
						t.Fatal(err)
					}
					defer out.Close()
					spec := initSpec(root, tc.arg0, "-c", probe)
					spec.Process.Cwd = tc.cwd
					o := launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS, Cgroup: pl, Stdout: out, Stderr: out,
						Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}}
					if role == initmsg.RoleExec {
						spec.Root, spec.Mounts, spec.Linux = nil, nil, nil
						o.Role, o.New, o.Join, o.Config.Role = nsproto.RoleExec, 0, joinAll(t, ctr.Pid), initmsg.RoleExec
					}
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					p, err := launch.Start(ctx, o)
					if err == nil {
						err = p.Exec(context.Background())
						st, _ := p.Wait()
						got, _ := os.ReadFile(out.Name())
						t.Fatalf("started (%v, exec error %v); the process printed:\n%s", st, err, got)
					}
					var ie *initmsg.InitError
					if !asInitError(err, &ie) {
						t.Fatalf("error %v (%T) is not a typed init error", err, err)
					}
					if ie.Step != tc.step {
						t.Errorf("refused at step %q (%v), want %q", ie.Step, err, tc.step)
					}
				})
			}
		}
	}
}
