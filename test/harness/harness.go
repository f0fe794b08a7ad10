// Package harness runs the crib binary as a daemon on a temporary root,
// state dir, config and socket, and connects the kubelet's CRI clients to it.
// Shared by the e2e tests and the benchmarks. Test-only code; needs root.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	internalapi "k8s.io/cri-api/pkg/apis"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/testutil"
)

// cribBin is the binary under test, set by Main.
var cribBin string

// Binary is the crib binary under test (set by Main).
func Binary() string { return cribBin }

// ShimBinary is the crib-shim binary next to it.
func ShimBinary() string { return filepath.Join(filepath.Dir(cribBin), "crib-shim") }

// InitBinary is the crib-init binary next to it.
func InitBinary() string { return filepath.Join(filepath.Dir(cribBin), "crib-init") }

// Main is a TestMain: it takes the binary from $CRIB_BIN or builds one, then
// runs the tests.
func Main(m *testing.M) int {
	cribBin = os.Getenv("CRIB_BIN")
	if cribBin == "" {
		dir, err := os.MkdirTemp("", "crib-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cribBin = filepath.Join(dir, "crib")
		// What `make build` builds, as shipped: crib-init without libc
		// on amd64.
		if err := testutil.BuildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// Env is one daemon's world: its directories, config and socket. The socket
// lives in a short path (unix socket paths are limited to 108 bytes).
type Env struct {
	t        testing.TB
	Dir      string // everything below lives here
	Root     string
	State    string
	Sock     string
	CNIConf  string
	ConfPath string
	// Netns, when set by WithNetwork, is the network namespace the daemon
	// runs in.
	Netns string
	// CNIBin, when set before WriteConfig, is a plugin directory searched
	// before Debian's.
	CNIBin string
	// Bin, when set, is the daemon binary to run instead of Binary().
	Bin string
	// Args are more daemon flags, for every Start and Spawn.
	Args []string
	// CgroupRoot is the daemon's cgroup_root: pods without a cgroup parent
	// go there. It is the test's own, removed when the test ends.
	CgroupRoot string
	// LogLevel, when set before WriteConfig, replaces the tests' 4 (every
	// RPC logged): benchmarks run at the daemon's default, 2.
	LogLevel int
	// TopLevel, when set before WriteConfig, is TOML for the config's top
	// level (WriteConfig's extra goes after its tables).
	TopLevel string
	// NRISock is the daemon's own NRI socket, and NRIPlugins and NRIConf
	// its plugin and plugin config directories, empty unless a test puts
	// plugins there: parallel daemons never share a socket (NRI replaces
	// one it finds) and never launch the host's plugins.
	NRISock, NRIPlugins, NRIConf string
	// NRI, when set before WriteConfig, is more TOML for the [nri] table
	// ("plugin_request_timeout = \"10s\"").
	NRI string
}

func NewEnv(t testing.TB) *Env {
	t.Helper()
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "crib-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Runs last, after the daemon is gone: shims it started outlive it
		// by design, and pods a failed test did not remove leave mounts.
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "state", "shims", "*", "shim.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
		killShims(t, dir)
		unmountUnder(t, dir)
		removeCgroup(t, "/"+filepath.Base(dir))
		os.RemoveAll(dir)
	})
	e := &Env{t: t, Dir: dir, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"),
		CNIConf: filepath.Join(dir, "net.d"), ConfPath: filepath.Join(dir, "crib.toml"), CgroupRoot: "/" + filepath.Base(dir)}
	e.Sock = filepath.Join(e.State, "crib.sock")
	e.NRISock = filepath.Join(dir, "nri.sock")
	e.NRIPlugins, e.NRIConf = filepath.Join(dir, "nri", "plugins"), filepath.Join(dir, "nri", "conf.d")
	for _, d := range []string{e.CNIConf, e.NRIPlugins, e.NRIConf} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.WriteConfig("")
	return e
}

// EnvPodsPerShim names the environment variable that, when set, is every
// env's [shim] pods_per_shim (unless a test sets its own): `make test`
// runs the restart and leak tests with one pod per shim process as well as
// with the default.
const EnvPodsPerShim = "CRIB_PODS_PER_SHIM"

// WriteConfig writes the daemon's config file with extra TOML appended.
func (e *Env) WriteConfig(extra string) {
	e.t.Helper()
	if n := os.Getenv(EnvPodsPerShim); n != "" && !strings.Contains(extra, "[shim]") {
		extra += fmt.Sprintf("\n[shim]\npods_per_shim = %s\n", n)
	}
	bins := `"/usr/lib/cni"`
	if e.CNIBin != "" {
		bins = fmt.Sprintf("%q, %s", e.CNIBin, bins)
	}
	level := 4
	if e.LogLevel != 0 {
		level = e.LogLevel
	}
	nri := fmt.Sprintf("[nri]\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\n%s\n", e.NRISock, e.NRIPlugins, e.NRIConf, e.NRI)
	body := fmt.Sprintf("socket = \"unix://%s\"\nroot = %q\nstate = %q\nlog_level = %d\ncgroup_root = %q\n%s\n[debug]\naddress = %q\n\n%s[cni]\nconf_dir = %q\nbin_dirs = [%s]\n%s",
		e.Sock, e.Root, e.State, level, e.CgroupRoot, e.TopLevel, e.debugSock(), nri, e.CNIConf, bins, extra)
	if err := os.WriteFile(e.ConfPath, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// Daemon is a running crib daemon.
type Daemon struct {
	e    *Env
	cmd  *exec.Cmd
	Logs *SyncBuffer
	done chan error
}

// SyncBuffer is a bytes.Buffer safe to read while another goroutine writes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs the daemon and waits until it serves the socket.
func (e *Env) Start(args ...string) *Daemon {
	e.t.Helper()
	d := e.Spawn(args...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			e.t.Fatalf("daemon exited early: %v\n%s", err, d.Logs)
		default:
		}
		if _, err := os.Stat(e.Sock); err == nil {
			if c, err := grpc.NewClient("unix://"+e.Sock, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
				_, err := criapi.NewRuntimeServiceClient(c).Version(context.Background(), &criapi.VersionRequest{})
				c.Close()
				if err == nil {
					return d
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Kill()
	e.t.Fatalf("daemon did not serve %s in time\n%s", e.Sock, d.Logs)
	return nil
}

// Spawn starts the daemon process without waiting for it to serve.
func (e *Env) Spawn(args ...string) *Daemon {
	e.t.Helper()
	d := &Daemon{e: e, Logs: &SyncBuffer{}, done: make(chan error, 1)}
	bin := cribBin
	if e.Bin != "" {
		bin = e.Bin
	}
	argv := append(append([]string{bin, "daemon", "--config", e.ConfPath}, e.Args...), args...)
	if e.Netns != "" {
		// The daemon, and so every CNI plugin it runs, lives in the test's
		// network namespace: bridges, veths and addresses stay there.
		// (nsenter, not `ip netns exec`: that also makes a mount namespace
		// with a fresh /sys, hiding the cgroup hierarchies.)
		argv = append([]string{"nsenter", "--net=/run/netns/" + e.Netns}, argv...)
	}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.Logs, d.Logs
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	e.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.Kill()
		}
		if e.t.Failed() {
			e.t.Logf("daemon log:\n%s", d.Logs)
		}
	})
	return d
}

// Wait returns the daemon's exit error, failing the test after timeout.
func (d *Daemon) Wait(timeout time.Duration) error {
	d.e.t.Helper()
	select {
	case err := <-d.done:
		d.done <- err // keep it for later callers
		return err
	case <-time.After(timeout):
		d.e.t.Fatalf("daemon did not exit within %s\n%s", timeout, d.Logs)
		return nil
	}
}

// Stop sends SIGTERM and expects a clean exit.
func (d *Daemon) Stop() {
	d.e.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.Wait(15 * time.Second); err != nil {
		d.e.t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, d.Logs)
	}
}

// Pid is the daemon's process id (nsenter execs the daemon, so it is the
// same process under WithNetwork).
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// Kill sends SIGKILL, as a crash or the OOM killer would.
func (d *Daemon) Kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-d.done:
		d.done <- err
	case <-time.After(10 * time.Second):
	}
}

// Clients are the kubelet's CRI clients and raw stubs for status codes.
type Clients struct {
	Images  internalapi.ImageManagerService
	Runtime internalapi.RuntimeService
	RawImg  criapi.ImageServiceClient
	RawRt   criapi.RuntimeServiceClient
}

func (d *Daemon) Clients() Clients {
	t := d.e.t
	t.Helper()
	ctx := context.Background()
	endpoint := "unix://" + d.e.Sock
	img, err := remote.NewRemoteImageService(ctx, endpoint, 10*time.Second, noop.NewTracerProvider(), false)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := remote.NewRemoteRuntimeService(ctx, endpoint, 10*time.Second, noop.NewTracerProvider(), false)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return Clients{Images: img, Runtime: rt, RawImg: criapi.NewImageServiceClient(conn), RawRt: criapi.NewRuntimeServiceClient(conn)}
}

func MustContain(t testing.TB, s string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(s, w) {
			t.Errorf("%q does not contain %q", s, w)
		}
	}
}

// WithNetwork gives the daemon a network of its own: a named network
// namespace (deleted when the test ends) to run in, and a CNI config for a
// bridge with host-local addresses from subnet (such as "10.88.7.0/24") and
// portmap, whose IPAM state lives in the env's directory.
func (e *Env) WithNetwork(subnet string) {
	e.t.Helper()
	e.Netns = "crib-e2e-" + filepath.Base(e.Dir)[len("crib-e2e-"):]
	AddNetwork(e.t, e.Netns, e.CNIConf, filepath.Join(e.Dir, "ipam"), subnet)
}

// AddNetwork makes the named network namespace (deleted when the test
// ends) with loopback up, and writes to confDir the CNI config WithNetwork
// uses: a bridge with host-local addresses from subnet, whose state lives in
// ipamDir, and portmap. Benchmarks give another runtime the same network.
func AddNetwork(t testing.TB, netns, confDir, ipamDir, subnet string) {
	t.Helper()
	testutil.AddNetns(t, netns)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"crib-e2e","plugins":[
 {"type":"bridge","bridge":"cribe2e0","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}`, subnet, ipamDir)
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-crib-e2e.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Reboot simulates a node reboot for a stopped daemon: every process the
// env's shims ran is gone and the state dir (tmpfs /run on a real node) is
// empty; the root dir survives. Pods' own processes must be killed by the
// caller (they live in cgroups the test owns).
func (e *Env) Reboot() {
	e.t.Helper()
	killShims(e.t, e.Dir)
	unmountUnder(e.t, e.State)
	if err := os.RemoveAll(e.State); err != nil {
		e.t.Fatal(err)
	}
}

// killShims kills the shim processes started for this env (their command
// line names a directory under dir), by pid.
func killShims(t testing.TB, dir string) {
	for _, sh := range shims(func(args []string) bool { return strings.Contains(strings.Join(args, " "), dir+"/") }) {
		if sh.pid != os.Getpid() {
			t.Logf("killing leftover shim %d (%s)", sh.pid, strings.Join(sh.args, " "))
			_ = syscall.Kill(sh.pid, syscall.SIGKILL)
		}
	}
}

// removeCgroup kills what is left in the env's cgroup root and removes it
// (a pod a failed test did not remove).
func removeCgroup(t testing.TB, path string) {
	cg, err := manager.Open("/proc/self/mountinfo")
	if err == nil {
		err = cg.Remove(path)
	}
	if err != nil {
		t.Errorf("remove the test's cgroup %s: %v", path, err)
	}
}

// UnmountUnder detaches every mount below dir, deepest first (for another
// runtime's directories in the benchmarks).
func UnmountUnder(t testing.TB, dir string) { unmountUnder(t, dir) }

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", points[i], err)
		}
	}
}

// ReadmeSection returns the text of the README's section titled title (a
// "## " heading), up to the next one; the tests that run the README's
// commands literally read their blocks from it.
func ReadmeSection(t testing.TB, repo, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %q section", "## "+title)
	}
	s = s[start+1:]
	if end := strings.Index(s, "\n## "); end > 0 {
		s = s[:end]
	}
	return s
}

// EnvCount is the positive number in the environment variable name (what
// a make target sets for a long run), def when it is unset.
func EnvCount(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}
