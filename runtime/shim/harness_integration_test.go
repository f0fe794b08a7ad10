package shim_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
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
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
	"github.com/crib-runtime/crib/runtime/shimclient"
)

// cribBin is the crib-shim binary under test: the one next to $CRIB_BIN
// (bin/crib), or built by TestMain.
var cribBin string

func TestMain(m *testing.M) {
	code := func() int {
		if daemon := os.Getenv("CRIB_BIN"); daemon != "" {
			cribBin = filepath.Join(filepath.Dir(daemon), "crib-shim")
		}
		if cribBin == "" && os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "crib-shim-test-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			cribBin = filepath.Join(dir, "crib-shim")
			root, _ := filepath.Abs("../..")
			cmd := exec.Command("go", "build", "-tags", "netgo,osusergo,grpcnotrace", "-ldflags", "-extldflags=-static", "-o", cribBin, "./cmd/crib-shim")
			cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "build crib-shim:", err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// pod is one pod served by a shim process under test, with its
// test-owned cgroup parent.
type pod struct {
	t        *testing.T
	id       string
	dir      string // the pod's shim directory
	groupDir string // the shim process's
	binary   string // the sealed crib binary the shim runs from
	client   *shimapi.Client
	cg       manager.Manager
	cgroup   string // parent of the containers' cgroups
	rootfs   string
}

func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPod seals the crib binary (as the daemon does once per node), spawns
// a shim process for a fresh pod and connects to the pod's socket. Cleanup
// kills the shim by pid and removes the cgroup tree (with whatever still
// runs in it).
func newPod(t *testing.T) *pod {
	t.Helper()
	p := unservedPod(t)
	p.spawn()
	return p
}

// unservedPod is newPod without a shim: serveIn hands it to one.
func unservedPod(t *testing.T) *pod {
	t.Helper()
	testutil.RequireRoot(t)
	if cribBin == "" {
		t.Fatal("no crib binary")
	}
	sealDir := t.TempDir()
	sealed, err := launch.SealBinary(cribBin, sealDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = launch.UnsealBinary(sealDir) })
	m, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// As under the daemon's shims directory: the process's directory and
	// the pod's side by side.
	shims, id := t.TempDir(), randomID()
	p := &pod{t: t, id: id, dir: filepath.Join(shims, id[:16]), groupDir: filepath.Join(shims, "grp-test"), binary: sealed, cg: m,
		cgroup: "/crib-test-shim-" + randomID()[:12], rootfs: busyboxRootfs(t)}
	if err := m.Create(p.cgroup, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Remove(p.cgroup); err != nil {
			t.Errorf("remove %s: %v", p.cgroup, err)
		}
	})
	return p
}

// spawn starts the pod's shim process (again), has it serve the pod and
// connects to the pod's socket.
func (p *pod) spawn() {
	t := p.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := shimclient.Spawn(ctx, p.binary, p.groupDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("shim answered %v after Spawn", time.Since(start).Round(time.Millisecond))
	p.serveIn(p.groupDir)
	pid := p.shimPid()
	t.Cleanup(func() {
		if unix.Kill(pid, 0) == nil {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(p.groupDir, shimapi.LogName))
			t.Logf("shim log:\n%s", log)
		}
	})
}

// serveIn has the shim process on groupDir serve the pod from a
// directory beside groupDir, and connects.
func (p *pod) serveIn(groupDir string) {
	p.t.Helper()
	p.dir = filepath.Join(filepath.Dir(groupDir), p.id[:16])
	g := dialGroup(p.t, groupDir)
	defer g.Close()
	if _, err := g.Serve(context.Background(), &shimapi.ServeRequest{PodId: p.id, Dir: p.dir}); err != nil {
		p.t.Fatalf("Serve: %v", err)
	}
	p.groupDir = groupDir
	p.connect()
}

func dialGroup(t *testing.T, dir string) *shimapi.GroupClient {
	t.Helper()
	g, err := shimapi.DialGroup(context.Background(), filepath.Join(dir, shimapi.GroupSocketName))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (p *pod) connect() {
	p.t.Helper()
	if p.client != nil {
		_ = p.client.Close()
	}
	c, err := shimapi.Dial(context.Background(), filepath.Join(p.dir, shimapi.SocketName))
	if err != nil {
		p.t.Fatal(err)
	}
	p.client = c
	p.t.Cleanup(func() { _ = c.Close() })
}

// shimPid asks the kernel who serves the socket.
func (p *pod) shimPid() int {
	p.t.Helper()
	conn, err := net.Dial("unix", filepath.Join(p.dir, shimapi.SocketName))
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		p.t.Fatal(err)
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil {
		p.t.Fatal(err)
	}
	return int(cred.Pid)
}

// busyboxRootfs builds a minimal rootfs from Debian's busybox-static.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	return testutil.BusyboxRootfs(t, filepath.Join(t.TempDir(), "rootfs"), "sh", "cat", "sleep", "true", "echo", "head", "tr", "ps")
}

// spec is a busybox container in new pid/mnt/ipc/uts/net namespaces and a
// cgroup below the pod's.
func (p *pod) spec(id string, args ...string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}},
		Root:    &specs.Root{Path: p.rootfs},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: p.cgroup + "/" + id,
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}},
		},
	}
}

// create sends Create for spec with a log file in the pod's dir.
func (p *pod) create(id string, spec *specs.Spec) (*shimapi.ContainerState, string) {
	p.t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		p.t.Fatal(err)
	}
	logPath := filepath.Join(p.dir, id[:8]+".log")
	st, err := p.client.Create(context.Background(), &shimapi.CreateRequest{Id: id, Spec: data, LogPath: logPath})
	if err != nil {
		p.t.Fatalf("Create: %v", err)
	}
	return st, logPath
}

// run creates and starts a container.
func (p *pod) run(args ...string) (id, logPath string) {
	p.t.Helper()
	id = randomID()
	st, logPath := p.create(id, p.spec(id, args...))
	if st.Status != shimapi.Status_CREATED || st.Pid <= 0 {
		p.t.Fatalf("after Create: %v", st)
	}
	st, err := p.client.Start(context.Background(), &shimapi.ContainerRequest{Id: id})
	if err != nil {
		p.t.Fatalf("Start: %v", err)
	}
	if st.Status != shimapi.Status_RUNNING && st.Status != shimapi.Status_EXITED {
		p.t.Fatalf("after Start: %v", st)
	}
	return id, logPath
}

func (p *pod) wait(id string) *shimapi.ContainerState {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := p.client.Wait(ctx, &shimapi.ContainerRequest{Id: id})
	if err != nil {
		p.t.Fatalf("Wait: %v", err)
	}
	return st
}

// logLine is one parsed CRI log line.
type logLine struct {
	stream, tag, content string
}

func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("malformed log line %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, logLine{f[1], f[2], f[3]})
	}
	return out
}

// memory reads a process's resident, proportional and anonymous set sizes
// in KiB.
func memory(t *testing.T, pid int) (rss, pss, anon int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			switch f[0] {
			case "Rss:":
				rss, _ = strconv.Atoi(f[1])
			case "Pss:":
				pss, _ = strconv.Atoi(f[1])
			case "Anonymous:":
				anon, _ = strconv.Atoi(f[1])
			}
		}
	}
	return rss, pss, anon
}

func signalName(code int32) string {
	if code > 128 {
		return syscall.Signal(code - 128).String()
	}
	return ""
}
