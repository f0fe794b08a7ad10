package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"

	"github.com/crib-runtime/crib/test/harness"
)

// containerd is Debian's containerd with its CRI plugin, configured to pull
// from the loopback test registry over plain HTTP.
type containerd struct {
	cmd     *exec.Cmd
	dir     string
	sock    string
	images  internalapi.ImageManagerService
	runtime internalapi.RuntimeService
}

// containerdConfig is what a benchmark needs of containerd beyond a private
// root, state and socket.
type containerdConfig struct {
	// Registry is the test registry's host:port, reached over plain HTTP.
	Registry string
	// Netns, when set, is the network namespace (a name under /run/netns)
	// containerd runs in, like crib under harness.Env.WithNetwork.
	Netns string
	// CNIConfDir holds the CNI config for pods (the plugins come from
	// /usr/lib/cni); SandboxImage is the pod sandbox ("pause") image.
	CNIConfDir, SandboxImage string
}

// startContainerd runs containerd on a temporary root; the caller's registry
// host is reached over HTTP through a hosts.toml, as a site would configure it.
func startContainerd(b testing.TB, cc containerdConfig) *containerd {
	b.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		b.Skip("containerd is not installed (apt-get install containerd) — no comparison")
	}
	dir, err := os.MkdirTemp("/var/tmp", "crib-bench-ctrd-")
	if err != nil {
		b.Fatal(err)
	}
	registryHost := cc.Registry
	hosts := filepath.Join(dir, "certs.d", registryHost)
	if err := os.MkdirAll(hosts, 0o755); err != nil {
		b.Fatal(err)
	}
	hostsToml := fmt.Sprintf("server = \"http://%s\"\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", registryHost, registryHost)
	if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(hostsToml), 0o644); err != nil {
		b.Fatal(err)
	}
	if cc.CNIConfDir == "" {
		cc.CNIConfDir = filepath.Join(dir, "net.d")
	}
	sock := filepath.Join(dir, "containerd.sock")
	// crib applies no AppArmor profile, so containerd applies none either
	// (Debian's kernel has AppArmor on).
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  disable_apparmor = true
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", cc.SandboxImage, cc.CNIConfDir, filepath.Join(dir, "certs.d"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{bin, "--config", filepath.Join(dir, "config.toml")}
	if cc.Netns != "" {
		argv = append([]string{"nsenter", "--net=/run/netns/" + cc.Netns}, argv...)
	}
	c := &containerd{cmd: exec.Command(argv[0], argv[1:]...), dir: dir, sock: sock}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
		logf.Close()
		// Shims outlive containerd by design: a benchmark that failed
		// half-way leaves some, and their containers' mounts.
		for _, p := range procs() {
			if p.comm == "containerd-shim" && strings.Contains(p.cmdline, sock) {
				b.Logf("killing leftover shim %d (%s)", p.pid, p.cmdline)
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
		}
		harness.UnmountUnder(b, dir)
		os.RemoveAll(dir)
	})
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.images, err = remote.NewRemoteImageService(ctx, "unix://"+sock, 5*time.Second, noop.NewTracerProvider(), false)
		if err == nil {
			c.runtime, err = remote.NewRemoteRuntimeService(ctx, "unix://"+sock, 30*time.Second, noop.NewTracerProvider(), false)
		}
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("containerd did not serve CRI: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pid is containerd's process id (nsenter execs it).
func (c *containerd) pid() int { return c.cmd.Process.Pid }
