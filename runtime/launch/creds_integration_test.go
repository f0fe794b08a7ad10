package launch_test

import (
	"context"
	"errors"
	"io"
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
					// The spec sets no capabilities: the user's thread waits
					// with none, root's kept across the uid change dropped.
					for _, set := range []string{"CapPrm", "CapEff", "CapAmb"} {
						if !strings.Contains(string(b), "\n"+set+":\t0000000000000000\n") {
							t.Errorf("%s of the user's thread %s is not empty:\n%s", set, task, b)
						}
					}
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

// TestExecStartAtOnce: with Start sent behind the config, an exec runs as
// soon as it is set up; Exec still reports its execve (EOF) or its
// failure, and a config that waits for runtime hooks is refused.
func TestExecStartAtOnce(t *testing.T) {
	bin := testBinary(t)
	ctr := startInit(t, launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit,
			Spec: initSpec(busyboxRootfs(t), "/bin/sleep", "600")}})
	exec := func(t *testing.T, out *os.File, args ...string) (*launch.Process, error) {
		proc := &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}}
		return launch.Start(context.Background(), launch.Options{Binary: bin, Role: nsproto.RoleExec,
			Join: joinAll(t, ctr.Pid), StartAtOnce: true, Stdout: out, Stderr: out,
			Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleExec,
				Spec: &specs.Spec{Process: proc, Linux: &specs.Linux{}}}})
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := exec(t, w, "/bin/sh", "-c", "echo ran")
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Exec(context.Background()); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	if b, _ := io.ReadAll(r); string(b) != "ran\n" {
		t.Errorf("output %q, want %q", b, "ran\n")
	}
	// execve(2) itself fails: after Ready, so Exec reports it.
	p, err = exec(t, nil, "/etc/passwd")
	if err == nil {
		err = p.Exec(context.Background())
		_, _ = p.Wait()
	}
	var ie *initmsg.InitError
	if !errors.As(err, &ie) || ie.Step != "exec" {
		t.Errorf("exec of a file that is no program: %v, want the init's exec error", err)
	}
	_, err = launch.Start(context.Background(), launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
		StartAtOnce: true, RuntimeHooks: func(int) error { return nil },
		Config: &initmsg.Config{Version: initmsg.VersionHooks, Role: initmsg.RoleInit,
			Spec: initSpec(busyboxRootfs(t), "/bin/true"), Hooks: &initmsg.Hooks{Runtime: true}}})
	if err == nil || !strings.Contains(err.Error(), "runtime hooks") {
		t.Errorf("Start at once with runtime hooks: %v, want refused", err)
	}
}
