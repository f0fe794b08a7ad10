package launch_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// TestInitWaitsUndumpableAsUser: the init sets the user's credentials on
// the thread that will execve only, then waits for Start, its other
// threads still root. Switching the euid makes the process dumpable again
// when fs.suid_dumpable is not 0, and a process of that user in the
// container could then ptrace the init and reach the root threads: the
// init must stay non-dumpable (/proc/<pid>/task/<tid>/ files owned by
// root, not by the user). In the v2 guest, whose host is the tests' own,
// fs.suid_dumpable is set to 1 for the test, as some hosts have it.
func TestInitWaitsUndumpableAsUser(t *testing.T) {
	bin := testBinary(t)
	if os.Getenv("CRIB_TEST_OWN_HOST") == "1" {
		const sysctl = "/proc/sys/fs/suid_dumpable"
		old, err := os.ReadFile(sysctl)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sysctl, []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.WriteFile(sysctl, old, 0) })
	}
	for _, role := range []string{initmsg.RoleInit, initmsg.RoleExec} {
		t.Run(role, func(t *testing.T) {
			spec := initSpec(busyboxRootfs(t), "/bin/true")
			spec.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000}}
			o := launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
				Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}}
			if role == initmsg.RoleExec {
				ctr := startInit(t, launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
					Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit,
						Spec: initSpec(busyboxRootfs(t), "/bin/sleep", "600")}})
				o.Role, o.New, o.Join = nsproto.RoleExec, 0, joinAll(t, ctr.Pid)
				o.Config.Role, o.Config.Spec = initmsg.RoleExec, &specs.Spec{Process: spec.Process, Linux: &specs.Linux{}}
			}
			p, err := launch.Start(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = p.Signal(syscall.SIGKILL)
				_, _ = p.Wait()
			}()
			// Set up and waiting for Start: the thread that will exec is the user's.
			tasks, err := filepath.Glob("/proc/" + strconv.Itoa(p.Pid) + "/task/*")
			if err != nil || len(tasks) == 0 {
				t.Fatalf("threads of %d: %v %v", p.Pid, tasks, err)
			}
			users := 0
			for _, task := range tasks {
				b, err := os.ReadFile(task + "/status")
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), "\nUid:\t1000\t1000\t1000\t1000\n") {
					users++
				}
				var st syscall.Stat_t
				if err := syscall.Stat(task+"/environ", &st); err != nil {
					t.Fatal(err)
				}
				if st.Uid != 0 {
					t.Errorf("%s/environ is owned by uid %d: the init is dumpable", task, st.Uid)
				}
			}
			if users == 0 {
				t.Errorf("no thread of %d runs as uid 1000", p.Pid)
			}
		})
	}
}

// joinAll opens pid's namespaces for an exec into its container.
func joinAll(t *testing.T, pid int) []launch.Namespace {
	t.Helper()
	var ns []launch.Namespace
	for name, kind := range map[string]uint32{"ipc": syscall.CLONE_NEWIPC, "uts": syscall.CLONE_NEWUTS,
		"net": syscall.CLONE_NEWNET, "pid": syscall.CLONE_NEWPID, "mnt": syscall.CLONE_NEWNS} {
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		ns = append(ns, launch.Namespace{Type: kind, File: f})
	}
	return ns
}
