package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

	"github.com/crib-runtime/crib/internal/testutil"
)

// cribBin is the binary under test: $CRIB_BIN, or one built by TestMain.
var cribBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	cribBin = os.Getenv("CRIB_BIN")
	if cribBin == "" {
		dir, err := os.MkdirTemp("", "crib-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		cribBin = filepath.Join(dir, "crib")
		out, err := exec.Command("go", "build", "-o", cribBin, "github.com/crib-runtime/crib/cmd/crib").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build crib: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// env is one daemon's world: its directories, config and socket. The socket
// lives in a short path (unix socket paths are limited to 108 bytes).
type env struct {
	t        *testing.T
	dir      string
	root     string
	state    string
	sock     string
	cniConf  string
	confPath string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "crib-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	e := &env{t: t, dir: dir, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"),
		cniConf: filepath.Join(dir, "net.d"), confPath: filepath.Join(dir, "crib.toml")}
	e.sock = filepath.Join(e.state, "crib.sock")
	if err := os.MkdirAll(e.cniConf, 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeConfig("")
	return e
}

// writeConfig writes the daemon's config file with extra TOML appended.
func (e *env) writeConfig(extra string) {
	e.t.Helper()
	body := fmt.Sprintf("socket = \"unix://%s\"\nroot = %q\nstate = %q\nlog_level = 4\n\n[cni]\nconf_dir = %q\nbin_dirs = [\"/usr/lib/cni\"]\n%s",
		e.sock, e.root, e.state, e.cniConf, extra)
	if err := os.WriteFile(e.confPath, []byte(body), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// daemon is a running crib daemon.
type daemon struct {
	e    *env
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the daemon and waits until it serves the socket.
func (e *env) start(args ...string) *daemon {
	e.t.Helper()
	d := e.spawn(args...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			e.t.Fatalf("daemon exited early: %v\n%s", err, d.logs)
		default:
		}
		if _, err := os.Stat(e.sock); err == nil {
			if c, err := grpc.NewClient("unix://"+e.sock, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
				_, err := criapi.NewRuntimeServiceClient(c).Version(context.Background(), &criapi.VersionRequest{})
				c.Close()
				if err == nil {
					return d
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.kill()
	e.t.Fatalf("daemon did not serve %s in time\n%s", e.sock, d.logs)
	return nil
}

// spawn starts the daemon process without waiting for it to serve.
func (e *env) spawn(args ...string) *daemon {
	e.t.Helper()
	d := &daemon{e: e, logs: &syncBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(cribBin, append([]string{"daemon", "--config", e.confPath}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	e.t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.kill()
		}
		if e.t.Failed() {
			e.t.Logf("daemon log:\n%s", d.logs)
		}
	})
	return d
}

// wait returns the daemon's exit error, failing the test after timeout.
func (d *daemon) wait(timeout time.Duration) error {
	d.e.t.Helper()
	select {
	case err := <-d.done:
		d.done <- err // keep it for later callers
		return err
	case <-time.After(timeout):
		d.e.t.Fatalf("daemon did not exit within %s\n%s", timeout, d.logs)
		return nil
	}
}

// stop sends SIGTERM and expects a clean exit.
func (d *daemon) stop() {
	d.e.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.wait(15 * time.Second); err != nil {
		d.e.t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, d.logs)
	}
}

// kill sends SIGKILL, as a crash or the OOM killer would.
func (d *daemon) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-d.done:
		d.done <- err
	case <-time.After(10 * time.Second):
	}
}

// clients are the kubelet's CRI clients and raw stubs for status codes.
type clients struct {
	images  internalapi.ImageManagerService
	runtime internalapi.RuntimeService
	rawImg  criapi.ImageServiceClient
	rawRt   criapi.RuntimeServiceClient
}

func (d *daemon) clients() clients {
	t := d.e.t
	t.Helper()
	ctx := context.Background()
	endpoint := "unix://" + d.e.sock
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
	return clients{images: img, runtime: rt, rawImg: criapi.NewImageServiceClient(conn), rawRt: criapi.NewRuntimeServiceClient(conn)}
}

func mustContain(t *testing.T, s string, words ...string) {
	t.Helper()
	for _, w := range words {
		if !strings.Contains(s, w) {
			t.Errorf("%q does not contain %q", s, w)
		}
	}
}
