package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"

	"github.com/crib-runtime/crib/internal/testutil"
)

// Containerd is Debian's containerd with its CRI plugin on a private root,
// state and socket: the runtime crib's tests and benchmarks compare against.
type Containerd struct {
	cmd  *exec.Cmd
	Dir  string
	Sock string
	// Log is containerd's log file.
	Log     string
	Images  internalapi.ImageManagerService
	Runtime internalapi.RuntimeService
}

// ContainerdConfig is what a test needs of containerd beyond a private
// root, state and socket.
type ContainerdConfig struct {
	// Registry is the test registry's host:port, reached over plain HTTP.
	Registry string
	// Mirrors are upstream registry hosts (registry.k8s.io, docker.io…)
	// whose pulls go to Registry instead, as crib's "_default" mirror does.
	Mirrors []string
	// Netns, when set, is the network namespace (a name under /run/netns)
	// containerd runs in, like crib under Env.WithNetwork.
	Netns string
	// CNIConfDir holds the CNI config for pods (the plugins come from
	// /usr/lib/cni); SandboxImage is the pod sandbox ("pause") image.
	CNIConfDir, SandboxImage string
	// Wrapper, when set, is a program that runs containerd: it gets
	// containerd's command line as its arguments and must exec it.
	Wrapper string
	// RuntimeHandlers are named handlers besides the default, each runc.
	RuntimeHandlers []string
}

// StartContainerd runs containerd on a temporary root; the registry hosts
// are reached over HTTP through hosts.toml files, as a site would configure
// them. It skips the test when containerd is not installed (or fails it
// under CRIB_TEST_STRICT). Everything goes when the test ends.
func StartContainerd(t testing.TB, cc ContainerdConfig) *Containerd {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		testutil.SkipOrFail(t, "containerd is not installed (apt-get install containerd): no comparison")
		return nil
	}
	dir, err := os.MkdirTemp("/var/tmp", "crib-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs.d")
	hosts := map[string]string{cc.Registry: fmt.Sprintf("server = \"http://%s\"\n", cc.Registry)}
	for _, m := range cc.Mirrors {
		hosts[m] = fmt.Sprintf("server = \"https://%s\"\n", m)
	}
	for host, server := range hosts {
		if err := os.MkdirAll(filepath.Join(certs, host), 0o755); err != nil {
			t.Fatal(err)
		}
		toml := server + fmt.Sprintf("[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", cc.Registry)
		if err := os.WriteFile(filepath.Join(certs, host, "hosts.toml"), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if cc.CNIConfDir == "" {
		cc.CNIConfDir = filepath.Join(dir, "net.d")
	}
	sock := filepath.Join(dir, "containerd.sock")
	// crib applies no AppArmor profile, so containerd applies none either
	// (Debian's kernel has AppArmor on). This host lacks CAP_SYS_RESOURCE:
	// containerd must not lower oom_score_adj below its own.
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
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, sock+".ttrpc", cc.SandboxImage, cc.CNIConfDir, certs)
	if len(cc.RuntimeHandlers) > 0 {
		// Naming runtimes replaces the default table: runc, the default
		// handler, is named again.
		for _, h := range append([]string{"runc"}, cc.RuntimeHandlers...) {
			cfg += fmt.Sprintf("  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%q]\n    runtime_type = \"io.containerd.runc.v2\"\n", h)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	argv := []string{bin, "--config", filepath.Join(dir, "config.toml")}
	if cc.Wrapper != "" {
		argv = append([]string{cc.Wrapper}, argv...)
	}
	if cc.Netns != "" {
		argv = append([]string{"nsenter", "--net=/run/netns/" + cc.Netns}, argv...)
	}
	c := &Containerd{cmd: exec.Command(argv[0], argv[1:]...), Dir: dir, Sock: sock, Log: logf.Name()}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
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
		// Shims outlive containerd by design: a test that failed half-way
		// leaves some, and their containers' mounts.
		for _, pid := range c.Shims() {
			t.Logf("killing leftover containerd shim %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		unmountUnder(t, dir)
		os.RemoveAll(dir)
	})
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.Images, err = remote.NewRemoteImageService(ctx, c.Endpoint(), 5*time.Second, noop.NewTracerProvider(), false)
		if err == nil {
			c.Runtime, err = remote.NewRemoteRuntimeService(ctx, c.Endpoint(), 30*time.Second, noop.NewTracerProvider(), false)
		}
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not serve CRI: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Endpoint is containerd's CRI endpoint as the kubelet takes it.
func (c *Containerd) Endpoint() string { return "unix://" + c.Sock }

// Pid is containerd's process id (nsenter execs it).
func (c *Containerd) Pid() int { return c.cmd.Process.Pid }

// Shims are the pids of this containerd's shims: processes named
// containerd-shim* whose command line names its socket.
func (c *Containerd) Shims() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "comm"))
		if !strings.HasPrefix(string(comm), "containerd-shim") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if strings.Contains(string(cmdline), c.Sock) {
			out = append(out, pid)
		}
	}
	return out
}
