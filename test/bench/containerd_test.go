package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// containerd is Debian's containerd with its CRI plugin, configured to pull
// from the loopback test registry over plain HTTP.
type containerd struct {
	cmd    *exec.Cmd
	images internalapi.ImageManagerService
}

// startContainerd runs containerd on a temporary root; the caller's registry
// host is reached over HTTP through a hosts.toml, as a site would configure it.
func startContainerd(b testing.TB, registryHost string) *containerd {
	b.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		b.Skip("containerd is not installed (apt-get install containerd) — no comparison")
	}
	dir, err := os.MkdirTemp("/var/tmp", "crib-bench-ctrd-")
	if err != nil {
		b.Fatal(err)
	}
	hosts := filepath.Join(dir, "certs.d", registryHost)
	if err := os.MkdirAll(hosts, 0o755); err != nil {
		b.Fatal(err)
	}
	hostsToml := fmt.Sprintf("server = \"http://%s\"\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", registryHost, registryHost)
	if err := os.WriteFile(filepath.Join(hosts, "hosts.toml"), []byte(hostsToml), 0o644); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "containerd.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", filepath.Join(dir, "net.d"), filepath.Join(dir, "certs.d"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		b.Fatal(err)
	}
	c := &containerd{cmd: exec.Command(bin, "--config", filepath.Join(dir, "config.toml"))}
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
		// containerd leaves overlay snapshots mounted only for containers; none here.
		os.RemoveAll(dir)
	})
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.images, err = remote.NewRemoteImageService(ctx, "unix://"+sock, 5*time.Second, noop.NewTracerProvider(), false)
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
