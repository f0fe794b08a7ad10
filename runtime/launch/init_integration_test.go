package launch_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/rdt"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/initproc"
	"github.com/crib-runtime/crib/runtime/launch"
)

// TestMain turns this binary into "crib init" when the launcher re-executes
// it: the nsexec constructor has run by then, and initproc takes over.
func TestMain(m *testing.M) {
	if os.Getenv(initmsg.EnvInitPipe) != "" {
		if err := initproc.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "init:", err)
		}
		os.Exit(1)
	}
	code := m.Run()
	if nolibcBuild.tmp != "" {
		os.RemoveAll(nolibcBuild.tmp)
	}
	os.Exit(code)
}

// busyboxRootfs builds a minimal rootfs from Debian's busybox-static.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	return testutil.BusyboxRootfs(t, filepath.Join(t.TempDir(), "rootfs"), "sh", "cat", "sleep", "true", "env")
}

func initSpec(root string, args ...string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}},
		Root:    &specs.Root{Path: root},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
			{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}}},
	}
}

const containerNS = unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNET

// fakeResctrl is a plain directory shaped like a resctrl mount with one
// class group ("gold") already there, and a mountinfo naming it.
func fakeResctrl(t *testing.T) (mountinfo string, tasks string, cfg rdt.Config) {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "resctrl")
	files := map[string]string{
		"schemata": "L3:0=7ff\n", "tasks": "",
		"info/L3/cbm_mask": "7ff\n", "info/L3/min_cbm_bits": "1\n", "info/L3/num_closids": "16\n", "info/L3/shareable_bits": "0\n",
		"crib-gold/schemata": "L3:0=7ff\n", "crib-gold/tasks": "",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mountinfo = filepath.Join(dir, "mountinfo")
	line := "40 25 0:36 / " + root + " rw,relatime shared:20 - resctrl resctrl rw\n"
	if err := os.WriteFile(mountinfo, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	classFile := filepath.Join(dir, "rdt.yaml")
	if err := os.WriteFile(classFile, []byte("partitions:\n  p:\n    l3Allocation: 100%\n    classes:\n      gold:\n        l3Allocation: 50%\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return mountinfo, filepath.Join(root, "crib-gold", "tasks"), rdt.Config{ConfigFile: classFile}
}

// TestPlacedBeforeFirstInstruction runs a container whose first action is to
// print its own /proc/self/cgroup, and checks, from inside the placement
// callback, that the process is in its RDT class while still in nsexec.
func TestPlacedBeforeFirstInstruction(t *testing.T) {
	// Born in the cgroup (stage 0 enters it; clone3 into it on v2), as crib
	// starts processes, and moved there by the launcher's callback.
	t.Run("born", func(t *testing.T) { testPlaced(t, true) })
	t.Run("moved", func(t *testing.T) { testPlaced(t, false) })
}

func testPlaced(t *testing.T, born bool) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	var pl *cgroups.Placement
	if born {
		var err error
		if pl, err = m.Placement(cg); err != nil {
			t.Fatal(err)
		}
		defer pl.Close()
	}
	mountinfo, tasks, cfg := fakeResctrl(t)
	classes, err := rdt.Open(mountinfo, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var inClassBeforeRun bool
	p, err := launch.Start(context.Background(), launch.Options{
		Binary: bin, Role: nsproto.RoleInit, New: containerNS, Stdout: out, Stderr: out,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: initSpec(busyboxRootfs(t), "/bin/cat", "/proc/self/cgroup")},
		Cgroup: pl,
		Place: func(pid int) error {
			if born {
				// Already there, before the callback: nothing moved it.
				if got, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup"); !strings.Contains(string(got), cg) {
					return fmt.Errorf("process %d not born in %s:\n%s", pid, cg, got)
				}
			} else if err := m.AddProc(cg, pid); err != nil {
				return err
			}
			if _, err := classes.Place("gold", strings.Repeat("c", 64), pid); err != nil {
				return err
			}
			// Still the crib binary waiting in its constructor, not the user's command.
			exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
			got, _ := os.ReadFile(tasks)
			inClassBeforeRun = strings.Contains(string(got), strconv.Itoa(pid)) && !strings.HasSuffix(exe, "busybox")
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Fatalf("container: %v %v", st, err)
	}
	if !inClassBeforeRun {
		t.Fatal("the process was not in its RDT class while still in nsexec")
	}
	printed, _ := os.ReadFile(out.Name())
	lines := strings.Split(strings.TrimSpace(string(printed)), "\n")
	if len(lines) == 0 || lines[0] == "" {
		t.Fatal("the container printed nothing")
	}
	placed := 0
	for _, l := range lines {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || strings.HasPrefix(f[1], "name=") {
			continue // named v1 hierarchies (name=systemd) are not crib's
		}
		if f[1] == "" && m.Mode() != cgroups.ModeUnified {
			continue // the nearly empty cgroup2 mount of a hybrid host
		}
		if f[2] != cg {
			t.Errorf("the container's first view of its cgroup: %q, want %s", l, cg)
		}
		placed++
	}
	if placed == 0 {
		t.Fatalf("no hierarchy checked in %q", printed)
	}
	t.Logf("the container's first output:\n%s", printed)
}

// TestEnvironmentIsTheSpecs: the user's process sees the spec's
// environment and nothing of the launcher's or init's (init pipe, Go
// runtime settings).
func TestEnvironmentIsTheSpecs(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p := startInit(t, launch.Options{Binary: testBinary(t), Role: nsproto.RoleInit, New: containerNS, Stdout: out, Stderr: out,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: initSpec(busyboxRootfs(t), "/bin/env")}})
	if st, err := p.Wait(); err != nil || !st.Success() {
		t.Fatalf("env: %v %v", st, err)
	}
	// HOME is init's, as runc's: the user's home, or / without one.
	if got, _ := os.ReadFile(out.Name()); string(got) != "PATH=/bin\nHOME=/\n" {
		t.Fatalf("the process's environment: %q, want the spec's PATH=/bin and HOME=/", got)
	}
}

// TestExecJoinsRunningContainer starts a container, then a second process in
// it through role exec, joining its namespaces by fd.
func TestExecJoinsRunningContainer(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	spec := initSpec(busyboxRootfs(t), "/bin/sleep", "30")
	ctr := startInit(t, launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
		Place:  func(pid int) error { return m.AddProc(cg, pid) },
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}})
	var join []launch.Namespace
	kinds := map[string]uint32{"user": unix.CLONE_NEWUSER, "ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS,
		"net": unix.CLONE_NEWNET, "pid": unix.CLONE_NEWPID, "mnt": unix.CLONE_NEWNS}
	for _, name := range []string{"ipc", "uts", "net", "pid", "mnt"} {
		f, err := os.Open("/proc/" + strconv.Itoa(ctr.Pid) + "/ns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		join = append(join, launch.Namespace{Type: kinds[name], File: f})
	}
	execSpec := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sleep", "30"}, Cwd: "/", Env: []string{"PATH=/bin"}}}
	pl, err := m.Placement(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	ex := startInit(t, launch.Options{Binary: bin, Role: nsproto.RoleExec, Join: join, Cgroup: pl,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleExec, Spec: execSpec}})
	for _, name := range []string{"ipc", "uts", "net", "pid", "mnt"} {
		if got, want := nsInode(t, ex.Pid, name), nsInode(t, ctr.Pid, name); got != want {
			t.Errorf("exec'd process %s namespace %d, want the container's %d", name, got, want)
		}
	}
	procs, _ := os.ReadFile("/proc/" + strconv.Itoa(ex.Pid) + "/cgroup")
	if !strings.Contains(string(procs), cg) {
		t.Errorf("exec'd process not in the container's cgroup:\n%s", procs)
	}
	if nspid := strings.Fields(status(t, ex.Pid, "NSpid")); len(nspid) != 2 || nspid[1] == "1" {
		t.Errorf("NSpid %v: want a second pid in the container's pid namespace", nspid)
	}
}

// startInit starts and execs a process, killing it when the test ends.
func startInit(t *testing.T, o launch.Options) *launch.Process {
	t.Helper()
	p, err := launch.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Signal(syscall.SIGKILL) == nil {
			_, _ = p.Wait()
		}
	})
	if err := p.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// mountCount counts host mounts under dir: a container's rootfs and binds
// that leaked out of its mount namespace would land there. (Other packages'
// tests run in parallel and mount elsewhere.)
func mountCount(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			n++
		}
	}
	return n
}

// TestInitBadInputLeavesNothing: a missing rootfs and a missing command fail
// with the step and path, before the container is reported started, and no
// process, mount or cgroup member remains.
func TestInitBadInputLeavesNothing(t *testing.T) {
	bin := testBinary(t)
	m, cg := testCgroup(t)
	root := busyboxRootfs(t)
	testRoot := filepath.Dir(filepath.Dir(root))
	beforeMounts, beforeChildren := mountCount(t, testRoot), children(t)
	for _, tc := range []struct {
		name string
		spec *specs.Spec
		want []string
	}{
		{"missing rootfs", initSpec("/nonexistent/rootfs", "/bin/true"), []string{"/nonexistent/rootfs"}},
		{"command not found", initSpec(root, "no-such-command"), []string{"no-such-command", "executable file not found"}},
		{"absolute command missing", initSpec(root, "/bin/nope"), []string{"/bin/nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := launch.Start(ctx, launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
				Stdout: nil, Stderr: nil,
				Place:  func(pid int) error { return m.AddProc(cg, pid) },
				Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: tc.spec}})
			if err == nil {
				_ = p.Signal(syscall.SIGKILL)
				_, _ = p.Wait()
				t.Fatal("started")
			}
			var ie *initmsg.InitError
			if !asInitError(err, &ie) {
				t.Fatalf("error %v (%T) is not a typed init error", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) && ie.Path != w {
					t.Errorf("error %q (step %q, path %q) does not mention %q", err, ie.Step, ie.Path, w)
				}
			}
		})
	}
	if after := children(t); len(after) != len(beforeChildren) {
		t.Errorf("children before %v, after %v", beforeChildren, after)
	}
	if after := mountCount(t, testRoot); after != beforeMounts {
		t.Errorf("host mounts %d before, %d after", beforeMounts, after)
	}
	procs, _ := os.ReadFile(cgroupProcsFile(t, cg))
	if len(bytes.TrimSpace(procs)) != 0 {
		t.Errorf("cgroup %s still holds %q", cg, procs)
	}
}

func asInitError(err error, target **initmsg.InitError) bool {
	for err != nil {
		if ie, ok := err.(*initmsg.InitError); ok {
			*target = ie
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// cgroupProcsFile finds cgroup.procs of cg in the pids hierarchy (v1) or the
// unified one.
func cgroupProcsFile(t *testing.T, cg string) string {
	t.Helper()
	for _, base := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup"} {
		p := filepath.Join(base, cg, "cgroup.procs")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no cgroup.procs for %s", cg)
	return ""
}
