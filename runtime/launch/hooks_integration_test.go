package launch_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// TestRuntimeHooksBeforePivot: with Config.Hooks.Runtime the init stops
// once its mounts are made and before pivot_root (its mountinfo still
// shows them under the host's rootfs path), the launcher's RuntimeHooks
// runs with its pid, then createContainer (in the init), then, after
// Exec, startContainer and the process, in that order.
func TestRuntimeHooksBeforePivot(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	root := busyboxRootfs(t)
	logDir := t.TempDir()
	logFile := filepath.Join(logDir, "log")
	appendLog := func(line string) {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			_, err = f.WriteString(line + "\n")
			f.Close()
		}
		if err != nil {
			t.Error(err)
		}
	}
	spec := initSpec(root, "/bin/sh", "-c", "echo process >> /hooklog/log")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: logDir, Options: []string{"rbind"}})
	cfg := &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec, Hooks: &initmsg.Hooks{
		Runtime: true,
		CreateContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			`echo "createContainer $(grep -c " $2/dev " /proc/self/mountinfo)" >> "$1"`, "hook", logFile, root}}},
		StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", `echo startContainer >> /hooklog/log`}}},
		State:          specs.State{Version: specs.Version, ID: "hooks"},
	}}
	pl, err := m.Placement(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	var hookPid int
	p, err := launch.Start(context.Background(), launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
		Cgroup: pl, Config: cfg,
		RuntimeHooks: func(pid int) error {
			hookPid = pid
			mi, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
			appendLog("runtime " + strconv.Itoa(bytes.Count(mi, []byte(" "+root+"/dev "))))
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if hookPid != p.Pid {
		t.Errorf("RuntimeHooks got pid %d, the init is %d", hookPid, p.Pid)
	}
	if err := p.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Fatalf("container: %v %v", st, err)
	}
	got, _ := os.ReadFile(logFile)
	if want := "runtime 1\ncreateContainer 1\nstartContainer\nprocess\n"; string(got) != want {
		t.Errorf("ran:\n%s\nwant:\n%s", got, want)
	}
}

// TestFailingRuntimeHookLeavesNothing: a RuntimeHooks error fails Start
// with that error; the init is gone and left no mount or cgroup member.
// So does a config that waits for hooks nobody runs.
func TestFailingRuntimeHookLeavesNothing(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	root := busyboxRootfs(t)
	testRoot := filepath.Dir(filepath.Dir(root))
	beforeMounts, beforeChildren := mountCount(t, testRoot), children(t)
	errHook := errors.New("prestart hook #0: hook /x: exit status 1")
	for name, run := range map[string]func(int) error{
		"failing": func(int) error { return errHook },
		"missing": nil,
	} {
		t.Run(name, func(t *testing.T) {
			pl, err := m.Placement(cg)
			if err != nil {
				t.Fatal(err)
			}
			defer pl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := launch.Start(ctx, launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS, Cgroup: pl,
				Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: initSpec(root, "/bin/true"),
					Hooks: &initmsg.Hooks{Runtime: true}},
				RuntimeHooks: run})
			if err == nil {
				_ = p.Signal(syscall.SIGKILL)
				_, _ = p.Wait()
				t.Fatal("started")
			}
			if run != nil && !errors.Is(err, errHook) {
				t.Errorf("Start = %v, want the hook's error", err)
			}
			if run == nil && !strings.Contains(err.Error(), "nothing to run them") {
				t.Errorf("Start = %v, want a refusal", err)
			}
		})
	}
	if after := children(t); len(after) != len(beforeChildren) {
		t.Errorf("children before %v, after %v", beforeChildren, after)
	}
	if after := mountCount(t, testRoot); after != beforeMounts {
		t.Errorf("host mounts %d before, %d after", beforeMounts, after)
	}
	if procs, _ := os.ReadFile(cgroupProcsFile(t, cg)); len(bytes.TrimSpace(procs)) != 0 {
		t.Errorf("cgroup %s still holds %q", cg, procs)
	}
}

// TestExecEndsWithItsContext: a startContainer hook that never returns
// (no timeout of its own) holds Exec only until its context ends; the init
// is killed, and Exec says so rather than that the process runs.
func TestExecEndsWithItsContext(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	root := busyboxRootfs(t)
	spec := initSpec(root, "/bin/true")
	cfg := &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec, Hooks: &initmsg.Hooks{
		StartContainer: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "600"}}},
		State:          specs.State{Version: specs.Version, ID: "hung"},
	}}
	pl, err := m.Placement(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	p, err := launch.Start(context.Background(), launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS, Cgroup: pl, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Exec(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec with a hung hook: %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Exec returned after %v", took)
	}
	if st, _ := p.Wait(); st == nil || st.Success() {
		t.Errorf("the init after Exec gave up: %v, want killed", st)
	}
}
