package launch_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// nolibcLauncher seals this test binary and crib-init as `make build`
// builds it (without libc on amd64) side by side, as the daemon seals
// crib-shim and crib-init: roles init and exec then start from crib-init.
// The other tests here run nsexec's cgo build, from this binary.
func nolibcLauncher(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("crib-init is built without libc on amd64 only")
	}
	build := t.TempDir()
	if err := testutil.BuildBinaries(build, "crib-init"); err != nil {
		t.Fatal(err)
	}
	seal := t.TempDir()
	t.Cleanup(func() { _ = launch.UnsealBinary(seal) })
	bin, err := launch.SealBinary(testBinary(t), seal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := launch.SealBinary(filepath.Join(build, launch.InitBinaryName), seal); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestNolibcInitAndExec runs a container and an exec into it through
// crib-init's build without libc: namespaces joined and created, the
// cgroup joined by stage 0, the state page gone before Go runs.
func TestNolibcInitAndExec(t *testing.T) {
	bin := nolibcLauncher(t)
	m, cg := testCgroup(t)
	pl, err := m.Placement(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	spec := initSpec(busyboxRootfs(t), "/bin/sleep", "30")
	ctr, err := launch.Start(context.Background(), launch.Options{Binary: bin, Role: nsproto.RoleInit, New: containerNS,
		Cgroup: pl, Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ctr.Signal(syscall.SIGKILL) == nil {
			_, _ = ctr.Wait()
		}
	})
	// Ready and waiting for its exec: still crib-init, past nsexec.
	proc := "/proc/" + strconv.Itoa(ctr.Pid)
	if exe, err := os.Readlink(proc + "/exe"); err != nil || filepath.Base(exe) != launch.InitBinaryName {
		t.Fatalf("the init runs %q (%v), want crib-init", exe, err)
	}
	maps, err := os.ReadFile(proc + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(maps), "1e0000000000-") {
		t.Fatalf("nsexec's state page is still mapped in the Go init:\n%s", maps)
	}
	if err := ctr.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	if nspid := strings.Fields(status(t, ctr.Pid, "NSpid")); len(nspid) != 2 || nspid[1] != "1" {
		t.Fatalf("NSpid %v: want pid 1 of a new pid namespace", nspid)
	}
	if cgs, _ := os.ReadFile(proc + "/cgroup"); !strings.Contains(string(cgs), cg) {
		t.Fatalf("the container is not in its cgroup %s:\n%s", cg, cgs)
	}

	var join []launch.Namespace
	kinds := map[string]uint32{"ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS, "net": unix.CLONE_NEWNET,
		"pid": unix.CLONE_NEWPID, "mnt": unix.CLONE_NEWNS}
	for name, kind := range kinds {
		f, err := os.Open(proc + "/ns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		join = append(join, launch.Namespace{Type: kind, File: f})
	}
	execSpec := &specs.Spec{Process: &specs.Process{Args: []string{"/bin/sleep", "30"}, Cwd: "/", Env: []string{"PATH=/bin"}}}
	ex := startInit(t, launch.Options{Binary: bin, Role: nsproto.RoleExec, Join: join, Cgroup: pl,
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleExec, Spec: execSpec}})
	for name := range kinds {
		if got, want := nsInode(t, ex.Pid, name), nsInode(t, ctr.Pid, name); got != want {
			t.Errorf("exec'd process %s namespace %d, want the container's %d", name, got, want)
		}
	}
}

// TestNolibcBadInput checks that nsexec's failures read the same without
// libc: its own formatting and errno texts.
func TestNolibcBadInput(t *testing.T) {
	bin := nolibcLauncher(t)
	dir := pinned(t, "ipc")
	spec := initSpec(busyboxRootfs(t), "/bin/true")
	before := children(t)
	for _, tc := range []struct {
		name string
		join launch.Namespace
		want string
	}{
		{"missing path", launch.Namespace{Type: unix.CLONE_NEWNET, Path: "/nonexistent/net"},
			"nsexec: open net namespace /nonexistent/net: No such file or directory"},
		{"wrong type", launch.Namespace{Type: unix.CLONE_NEWNET, Path: filepath.Join(dir, "ipc")},
			"is a ipc namespace, not a net namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := launch.Start(ctx, launch.Options{Binary: bin, Role: nsproto.RoleInit,
				New: unix.CLONE_NEWPID | unix.CLONE_NEWNS, Join: []launch.Namespace{tc.join},
				Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}})
			if err == nil {
				_ = p.Signal(syscall.SIGKILL)
				_, _ = p.Wait()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	if after := children(t); len(after) != len(before) {
		t.Fatalf("children before %v, after %v: a failed start leaked a process", before, after)
	}
}
