package launch_test

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
)

// nolibcBuild is crib-init as `make build` builds it, built once for the
// package's tests (TestMain removes it).
var nolibcBuild struct {
	once     sync.Once
	dir, tmp string
	err      error
}

// nolibcInitDir returns the directory of the crib-init under test:
// $CRIB_BIN's (the v2 guest has no Go to build it with), else one built
// once.
func nolibcInitDir() (string, error) {
	if bin := os.Getenv("CRIB_BIN"); bin != "" {
		return filepath.Dir(bin), nil
	}
	b := &nolibcBuild
	b.once.Do(func() {
		if b.tmp, b.err = os.MkdirTemp("", "crib-nolibc-"); b.err == nil {
			b.dir, b.err = b.tmp, testutil.BuildBinaries(b.tmp, "crib-init")
		}
	})
	return b.dir, b.err
}

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
	build, err := nolibcInitDir()
	if err != nil {
		t.Fatal(err)
	}
	initBin := filepath.Join(build, launch.InitBinaryName)
	if err := startsWithoutLoader(initBin); err != nil {
		t.Fatal(err)
	}
	seal := t.TempDir()
	t.Cleanup(func() { _ = launch.UnsealBinary(seal) })
	bin, err := launch.SealBinary(testBinary(t), seal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = launch.SealBinary(initBin, seal); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startsWithoutLoader checks that bin is crib-init's build without libc:
// the kernel starts it at _crib_start, with no dynamic loader.
func startsWithoutLoader(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s has a dynamic loader", bin)
		}
	}
	syms, err := f.Symbols()
	if err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	for _, s := range syms {
		if s.Name == "_crib_start" {
			if s.Value != f.Entry {
				return fmt.Errorf("%s starts at %#x, not at _crib_start (%#x)", bin, f.Entry, s.Value)
			}
			return nil
		}
	}
	return fmt.Errorf("%s has no _crib_start: not the build without libc", bin)
}

// bothBuilds are the two builds of nsexec as launchers start them: this
// test binary (cgo, the constructor under glibc) and crib-init without
// libc beside a sealed copy of it.
func bothBuilds(t *testing.T) []struct{ name, bin string } {
	return []struct{ name, bin string }{{"cgo", testBinary(t)}, {"nolibc", nolibcLauncher(t)}}
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

// TestNolibcBadInput checks that nsexec's failures read the same in both
// builds: the one without libc formats them and names errno itself.
func TestNolibcBadInput(t *testing.T) {
	builds := bothBuilds(t)
	dir := pinned(t, "ipc")
	spec := initSpec(busyboxRootfs(t), "/bin/true")
	notCgroup, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer notCgroup.Close()
	before := children(t)
	for _, tc := range []failCase{
		{"missing path", launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: "/nonexistent/net"}}},
			"nsexec: open net namespace /nonexistent/net: No such file or directory"},
		{"long name", launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: "/" + strings.Repeat("n", 300)}}},
			": File name too long"},
		{"wrong type", launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: filepath.Join(dir, "ipc")}}},
			"is a ipc namespace, not a net namespace"},
		// clone3 refuses a directory that is no cgroup: an error, not the
		// fallback to a plain clone (errno read right after a failed call).
		{"not a cgroup", launch.Options{Cgroup: &cgroups.Placement{Dir: notCgroup}},
			"nsexec: clone into cgroup " + notCgroup.Name() + " (fd "},
	} {
		for _, b := range builds {
			t.Run(tc.name+"/"+b.name, func(t *testing.T) {
				o := tc.o
				o.Binary, o.Role = b.bin, nsproto.RoleInit
				o.New |= unix.CLONE_NEWPID | unix.CLONE_NEWNS
				o.Config = &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}
				err := mustFailStart(t, o, tc.want)
				if tc.name == "not a cgroup" && !strings.HasSuffix(err.Error(), "): Bad file descriptor") {
					t.Fatalf("error %q: want clone3's EBADF named", err)
				}
			})
		}
	}
	if after := children(t); len(after) != len(before) {
		t.Fatalf("children before %v, after %v: a failed start leaked a process", before, after)
	}
}

// TestNolibcCloneIntoCgroup starts a container in a cgroup v2 directory
// with both builds: cloned into it, and, where clone3 is refused with
// ENOSYS (an older kernel, or a seccomp profile around the launcher),
// cloned plainly and placed by the launcher.
func TestNolibcCloneIntoCgroup(t *testing.T) {
	builds := bothBuilds(t)
	m, cg := testCgroup(t)
	spec := initSpec(busyboxRootfs(t), "/bin/sleep", "30")
	for _, noClone3 := range []bool{false, true} {
		for _, b := range builds {
			t.Run(fmt.Sprintf("%s/clone3 refused %v", b.name, noClone3), func(t *testing.T) {
				pl := v2Placement(t, m, cg)
				o := launch.Options{Binary: b.bin, Role: nsproto.RoleInit, New: containerNS, Cgroup: pl,
					Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec}}
				var p *launch.Process
				var err error
				if noClone3 {
					p, err = startWithoutClone3(o)
				} else {
					p, err = launch.Start(context.Background(), o)
				}
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if p.Signal(syscall.SIGKILL) == nil {
						_, _ = p.Wait()
					}
				})
				cgs, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/cgroup")
				if err != nil {
					t.Fatal(err)
				}
				want := "0::/" + strings.TrimPrefix(pl.Dir.Name(), "/sys/fs/cgroup/unified/")
				if pl.Dir.Name() != filepath.Join("/sys/fs/cgroup/unified", strings.TrimPrefix(want, "0::/")) {
					want = "0::/" // a v2 host: the manager's cgroup, checked by name below
				}
				if !strings.Contains(string(cgs), want) || !strings.Contains(string(cgs), filepath.Base(pl.Dir.Name())) {
					t.Fatalf("the init is not in %s:\n%s", pl.Dir.Name(), cgs)
				}
			})
		}
	}
}

// startWithoutClone3 starts o from a thread whose seccomp filter refuses
// clone3 with ENOSYS, which the launched process inherits. The thread is
// never unlocked, so it ends with its goroutine.
func startWithoutClone3(o launch.Options) (*launch.Process, error) {
	type result struct {
		p   *launch.Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		filter := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // the syscall number
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_CLONE3},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		}
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		// This thread only (no TSYNC); as root, no no_new_privs needed.
		if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
			done <- result{err: fmt.Errorf("seccomp filter: %w", err)}
			return
		}
		p, err := launch.Start(context.Background(), o)
		done <- result{p, err}
	}()
	r := <-done
	return r.p, r.err
}
