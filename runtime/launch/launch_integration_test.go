package launch_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/testutil"
	_ "github.com/crib-runtime/crib/nsexec" // the constructor under test runs in this binary
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/launch"
)

// testBinary is this test binary: it links nsexec, so re-executing it as
// "crib init" runs the constructor.
func testBinary(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func nsInode(t *testing.T, pid int, name string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func fileInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// children lists this process's live children, to prove nothing leaked.
func children(t *testing.T) []string {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var out []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		out = append(out, strings.Fields(string(b))...)
	}
	return out
}

func status(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return ""
}

func startPause(t *testing.T, o launch.Options) *launch.Process {
	t.Helper()
	o.Binary, o.Role = testBinary(t), nsproto.RolePause
	p, err := launch.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.Signal(syscall.SIGKILL) == nil {
			_, _ = p.Wait()
		}
	})
	return p
}

// testCgroup creates a cgroup this test owns and removes it afterwards.
func testCgroup(t *testing.T) (manager.Manager, string) {
	t.Helper()
	m, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	path := "/crib-test-launch-" + hex.EncodeToString(b)
	if err := m.Create(path, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Remove(path); err != nil {
			t.Errorf("remove %s: %v", path, err)
		}
	})
	return m, path
}

func TestPauseInNewNamespacesAndCgroup(t *testing.T) {
	m, cg := testCgroup(t)
	newNS := uint32(unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWNS |
		unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME)
	var placedBeforeRun bool
	p := startPause(t, launch.Options{New: newNS, Place: func(pid int) error {
		// The process exists but waits in the constructor: its cgroup
		// namespace is still ours, so it must see the path from our root.
		placedBeforeRun = true
		return m.AddProc(cg, pid)
	}})
	if !placedBeforeRun {
		t.Fatal("Place was not called")
	}
	cgroupFile, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/cgroup")
	if !strings.Contains(string(cgroupFile), cg) {
		t.Fatalf("pause is not in %s:\n%s", cg, cgroupFile)
	}
	for _, ns := range []string{"pid_for_children", "net", "ipc", "uts", "mnt", "cgroup", "time"} {
		if nsInode(t, p.Pid, ns) == nsInode(t, os.Getpid(), ns) {
			t.Errorf("%s namespace not new", ns)
		}
	}
	if nspid := strings.Fields(status(t, p.Pid, "NSpid")); len(nspid) != 2 || nspid[1] != "1" {
		t.Errorf("NSpid %v: want pid 1 in a new pid namespace", nspid)
	}
	rollup, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/smaps_rollup")
	t.Logf("pause VmRSS %s, RssAnon %s; smaps_rollup:\n%s", status(t, p.Pid, "VmRSS"), status(t, p.Pid, "RssAnon"), rollup)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil || !st.Success() {
		t.Fatalf("pause after SIGTERM: %v %v", st, err)
	}
}

// pinned makes namespaces that outlive their process, as a pod's are: a
// pause process creates them and their nsfs files are bind-mounted (as
// `ip netns` does), then the process goes.
func pinned(t *testing.T, kinds ...string) string {
	t.Helper()
	flags := map[string]uint32{"net": unix.CLONE_NEWNET, "ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS}
	var newNS uint32
	for _, k := range kinds {
		newNS |= flags[k]
	}
	holder := startPause(t, launch.Options{New: newNS})
	dir := t.TempDir()
	for _, k := range kinds {
		f := filepath.Join(dir, k)
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("/proc/"+strconv.Itoa(holder.Pid)+"/ns/"+k, f, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(f, unix.MNT_DETACH) })
	}
	_ = holder.Signal(syscall.SIGKILL)
	_, _ = holder.Wait()
	return dir
}

func TestJoinPinnedNamespaces(t *testing.T) {
	dir := pinned(t, "net", "ipc", "uts")
	p := startPause(t, launch.Options{New: unix.CLONE_NEWPID, Join: []launch.Namespace{
		{Type: unix.CLONE_NEWNET, Path: filepath.Join(dir, "net")},
		{Type: unix.CLONE_NEWIPC, Path: filepath.Join(dir, "ipc")},
		{Type: unix.CLONE_NEWUTS, Path: filepath.Join(dir, "uts")},
	}})
	for _, ns := range []string{"net", "ipc", "uts"} {
		if got, want := nsInode(t, p.Pid, ns), fileInode(t, filepath.Join(dir, ns)); got != want {
			t.Errorf("%s namespace inode %d, want the pinned %d", ns, got, want)
		}
	}
}

func TestJoinPidNamespaceOfPause(t *testing.T) {
	first := startPause(t, launch.Options{New: unix.CLONE_NEWPID})
	f, err := os.Open("/proc/" + strconv.Itoa(first.Pid) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	second := startPause(t, launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWPID, File: f}}})
	if got, want := nsInode(t, second.Pid, "pid"), nsInode(t, first.Pid, "pid"); got != want {
		t.Fatalf("pid namespace %d, want the first pause's %d", got, want)
	}
	if nspid := strings.Fields(status(t, second.Pid, "NSpid")); len(nspid) != 2 || nspid[1] == "1" {
		t.Fatalf("NSpid %v: want a non-1 pid inside the shared namespace", nspid)
	}
}

func TestNewUserNamespaceMapped(t *testing.T) {
	p := startPause(t, launch.Options{
		New:         unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNS,
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}},
	})
	uidMap, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/uid_map")
	if f := strings.Fields(string(uidMap)); len(f) != 3 || f[0] != "0" || f[1] != "200000" || f[2] != "65536" {
		t.Fatalf("uid_map %q", uidMap)
	}
	if uid := strings.Fields(status(t, p.Pid, "Uid")); uid[0] != "200000" {
		t.Fatalf("host view of the uid: %v, want 200000", uid)
	}
	setgroups, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/setgroups")
	if strings.TrimSpace(string(setgroups)) != "deny" {
		t.Fatalf("setgroups %q, want deny", setgroups)
	}
}

func TestBadInputLeavesNothing(t *testing.T) {
	dir := pinned(t, "ipc")
	regular := filepath.Join(t.TempDir(), "not-a-namespace")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A cgroup removed after its placement files were opened: stage 0's
	// write (v1) or the clone into it (v2) fails.
	m, gone := testCgroup(t)
	pl, err := m.Placement(gone)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if err := m.Remove(gone); err != nil {
		t.Fatal(err)
	}
	before := children(t)
	for _, tc := range []failCase{
		{"missing path", launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: "/nonexistent/net"}}},
			"open net namespace /nonexistent/net: No such file or directory"},
		{"not a namespace", launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: regular}}},
			"net namespace " + regular + " (fd"},
		{"wrong type", launch.Options{Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: filepath.Join(dir, "ipc")}}},
			"is a ipc namespace, not a net namespace"},
		{"joined and created", launch.Options{New: unix.CLONE_NEWNET, Join: []launch.Namespace{{Type: unix.CLONE_NEWNET, Path: regular}}},
			"net namespace both joined and created"},
		{"refused uid map", launch.Options{New: unix.CLONE_NEWUSER,
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}, {ContainerID: 5, HostID: 5000, Size: 10}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 10}}},
			"uid_map"},
		{"placement fails", launch.Options{New: unix.CLONE_NEWPID, Place: func(int) error { return errors.New("no such cgroup") }},
			"no such cgroup"},
		{"cgroup removed", launch.Options{New: unix.CLONE_NEWPID, Cgroup: pl}, strings.TrimPrefix(gone, "/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Binary, tc.o.Role = testBinary(t), nsproto.RolePause
			mustFailStart(t, tc.o, tc.want)
		})
	}
	if after := children(t); len(after) != len(before) {
		t.Fatalf("children before %v, after %v: a failed start leaked a process", before, after)
	}
}

// failCase is a launch that must fail with an error containing want.
type failCase struct {
	name string
	o    launch.Options
	want string
}

// mustFailStart starts o and fails the test unless the start fails with an
// error that contains want, which it returns.
func mustFailStart(t *testing.T, o launch.Options, want string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := launch.Start(ctx, o)
	if err == nil {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait()
		t.Fatal("started")
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	return err
}

func TestSealedBinary(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	start := time.Now()
	path, err := launch.SealedBinary(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sealing took %v", time.Since(start))
	t.Cleanup(func() {
		if err := launch.UnsealBinary(dir); err != nil {
			t.Error(err)
		}
	})
	// The protection is the read-only mount: while this test binary runs,
	// a write open fails earlier with ETXTBSY, but once nothing executes it
	// (the container's process has exec'd) only the mount stands in the way.
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil || fs.Flags&unix.ST_RDONLY == 0 {
		t.Fatalf("%s is not on a read-only mount (flags %#x, %v)", path, fs.Flags, err)
	}
	if _, err := os.OpenFile(path, os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) && !errors.Is(err, syscall.ETXTBSY) {
		t.Fatalf("open %s for writing: %v, want EROFS or ETXTBSY", path, err)
	}
	again, err := launch.SealedBinary(dir)
	if err != nil || again != path {
		t.Fatalf("second SealedBinary = %q, %v", again, err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mounts), path); n != 1 {
		t.Fatalf("%s mounted %d times, want once", path, n)
	}
	// A process started from it cannot write its own binary either.
	p := startPause(t, launch.Options{Binary: path, New: unix.CLONE_NEWPID})
	if _, err := os.OpenFile("/proc/"+strconv.Itoa(p.Pid)+"/exe", os.O_WRONLY, 0); err == nil {
		t.Fatal("the running binary is writable through /proc/<pid>/exe")
	}
}

// TestPauseConfined: every container of a pod that shares its pid namespace
// sees the pause as pid 1, so the pause must hold nothing a container could
// reach through /proc/1: no host files, capabilities, fds or dumpable memory.
func TestPauseConfined(t *testing.T) {
	ownMounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	p := startPause(t, launch.Options{New: unix.CLONE_NEWPID})
	proc := "/proc/" + strconv.Itoa(p.Pid)
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if v := status(t, p.Pid, f); strings.Trim(v, "0") != "" {
			t.Errorf("%s %s, want none", f, v)
		}
	}
	if v := status(t, p.Pid, "NoNewPrivs"); v != "1" {
		t.Errorf("NoNewPrivs %s, want 1", v)
	}
	if nsInode(t, p.Pid, "mnt") == nsInode(t, os.Getpid(), "mnt") {
		t.Error("the pause shares our mount namespace")
	}
	for _, dir := range []string{"root", "cwd", "fd"} {
		names, err := os.ReadDir(proc + "/" + dir)
		if err != nil || len(names) != 0 {
			t.Errorf("%s/%s holds %v (%v), want an empty directory", proc, dir, names, err)
		}
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(proc+"/root", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC || fs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("root of the pause: fs type %#x, flags %#x (%v), want a read-only tmpfs", fs.Type, fs.Flags, err)
	}
	if err := os.Mkdir(proc+"/root/tmp", 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir in the root of the pause: %v, want EROFS", err)
	}
	mounts, _ := os.ReadFile(proc + "/mountinfo")
	if n := strings.Count(strings.TrimSpace(string(mounts)), "\n") + 1; n != 1 {
		t.Errorf("the pause sees %d mounts, want only its root:\n%s", n, mounts)
	}
	// Nothing of the pause's mounts reached our namespace.
	if after, _ := os.ReadFile("/proc/self/mountinfo"); string(after) != string(ownMounts) {
		t.Errorf("our mounts changed:\nbefore:\n%s\nafter:\n%s", ownMounts, after)
	}
	// It still stops on SIGTERM.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait()
	if err != nil || !st.Success() {
		t.Fatalf("pause after SIGTERM: %v %v", st, err)
	}
}

// pinnedUserNS pins a user namespace mapped 0→host 300000 (65536 ids) and
// a net namespace owned by it, as sandbox/nsfs.PinUser does for a
// hostUsers: false pod, and returns the directory with "user" and "net".
func pinnedUserNS(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("cat")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 300000, Size: 65536}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: m, GidMappings: m, GidMappingsEnableSetgroups: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	dir := t.TempDir()
	for _, k := range []string{"user", "net"} {
		f := filepath.Join(dir, k)
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/ns/"+k, f, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(f, unix.MNT_DETACH) })
	}
	return dir
}

// TestJoinPinnedUserNamespaceInCgroup: a process that joins a pod's
// pinned user namespace (and the net namespace it owns) becomes the
// namespace's root (host uid 300000, not the unmapped host root), its new
// pid namespace is owned by that user namespace, and it is still born in
// (or, on cgroup v2, where the namespace's root may not clone into the
// host's cgroup, placed in) its cgroup.
func TestJoinPinnedUserNamespaceInCgroup(t *testing.T) {
	m, cg := testCgroup(t)
	dir := pinnedUserNS(t)
	pl, err := m.Placement(cg)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	p := startPause(t, launch.Options{New: unix.CLONE_NEWPID, Cgroup: pl, Join: []launch.Namespace{
		{Type: unix.CLONE_NEWUSER, Path: filepath.Join(dir, "user")},
		{Type: unix.CLONE_NEWNET, Path: filepath.Join(dir, "net")},
	}})
	if got, want := nsInode(t, p.Pid, "user"), fileInode(t, filepath.Join(dir, "user")); got != want {
		t.Errorf("user namespace %d, want the pinned %d", got, want)
	}
	if uid := strings.Fields(status(t, p.Pid, "Uid")); uid[0] != "300000" || uid[1] != "300000" {
		t.Errorf("host view of the uid: %v, want 300000 (root of the joined namespace)", uid)
	}
	if gid := strings.Fields(status(t, p.Pid, "Gid")); gid[0] != "300000" {
		t.Errorf("host view of the gid: %v, want 300000", gid)
	}
	pidns, err := os.Open("/proc/" + strconv.Itoa(p.Pid) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	defer pidns.Close()
	owner, err := unix.IoctlRetInt(int(pidns.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	err = unix.Fstat(owner, &st)
	unix.Close(owner)
	if err != nil || st.Ino != fileInode(t, filepath.Join(dir, "user")) {
		t.Errorf("pid namespace owned by user namespace %d (%v), want the pinned one", st.Ino, err)
	}
	cgroupFile, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/cgroup")
	if !strings.Contains(string(cgroupFile), cg) {
		t.Errorf("not in %s:\n%s", cg, cgroupFile)
	}
}
