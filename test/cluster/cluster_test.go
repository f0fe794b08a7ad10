//go:build cluster

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// mirrorAddr is where the test registry answers inside a cluster's network
// namespace: the script configures the runtime's mirror before the
// namespace exists, and nothing else listens on this port there.
const mirrorAddr = "127.0.0.1:5000"

// sandboxImage is containerd's pause image (crib needs none).
const sandboxImage = "registry.k8s.io/pause:3.10"

// cluster is one hack/local-cluster.sh cluster: its directory, name and
// network namespace, and the clients that reach into it.
type cluster struct {
	t      testing.TB
	repo   string
	dir    string
	netns  string
	state  string // the runtime's state directory, with its socket
	env    []string
	client *kubernetes.Clientset
	// down is set once the cluster was taken down (by stop, or by a
	// README line the test ran); checked once stop checked what is left.
	down, checked bool
}

// newRegistry serves the images the tests run: busybox (the e2e stand-in,
// with httpd and ps) as docker.io/library/busybox, and the pause image
// containerd's pods need.
func newRegistry(t testing.TB) *testregistry.Registry {
	t.Helper()
	reg := testregistry.Start(t)
	reg.Push(t, "library/busybox:latest", testregistry.E2EBusybox(t))
	reg.Push(t, strings.TrimPrefix(sandboxImage, "registry.k8s.io/"), testregistry.Pause(t))
	return reg
}

// startCluster brings a cluster up on runtime ("crib" or "containerd")
// through the script, with every pull going to reg, and takes it down when
// the test ends, failing the test if anything of it is left.
func startCluster(t testing.TB, runtime string, reg *testregistry.Registry) *cluster {
	t.Helper()
	testutil.RequireRoot(t)
	repo := testregistry.RepoRoot(t)
	// Short: the runtime's socket lives under /run/crib-cluster-NAME, and
	// unix socket paths are limited to 108 bytes.
	name := fmt.Sprintf("t%x", rand.Uint32())
	dir, err := os.MkdirTemp("/var/tmp", "crib-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, repo: repo, dir: dir, netns: "crib-cluster-" + name, state: "/run/crib-cluster-" + name,
		env: append(os.Environ(), "CRIB_CLUSTER_DIR="+dir, "CRIB_CLUSTER_NAME="+name,
			"CRIB_CLUSTER_RUNTIME="+runtime, "CRIB_CLUSTER_MIRROR="+mirrorAddr, "CRIB_CLUSTER_SANDBOX_IMAGE="+sandboxImage)}
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			c.logTails()
		}
		os.RemoveAll(dir)
	})
	start := time.Now()
	out, err := c.script("up")
	if err != nil {
		t.Fatalf("hack/local-cluster.sh up: %v\n%s", err, out)
	}
	t.Logf("cluster on %s up in %s", runtime, time.Since(start).Round(time.Second))
	reg.ListenInAt(t, "/run/netns/"+c.netns, mirrorAddr)
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "pki", "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dial = func(_ context.Context, network, addr string) (net.Conn, error) {
		return harness.DialIn("/run/netns/"+c.netns, network, addr)
	}
	cfg.QPS, cfg.Burst = 100, 200
	if c.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return c
}

// script runs hack/local-cluster.sh for this cluster.
func (c *cluster) script(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.repo, "hack", "local-cluster.sh"), args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stop takes the cluster down (once) and checks that nothing of it is
// left: the script fails when mounts or cgroups are; the network namespace
// and every process that names the cluster's directories must be gone too.
func (c *cluster) stop() {
	t := c.t
	if c.checked {
		return
	}
	c.checked = true
	// A failed up took its half cluster down itself.
	if _, err := os.Stat(filepath.Join(c.dir, "cluster.env")); err != nil {
		c.down = true
	}
	if !c.down {
		c.down = true
		if out, err := c.script("down"); err != nil {
			t.Errorf("hack/local-cluster.sh down: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat("/run/netns/" + c.netns); err == nil {
		t.Errorf("network namespace %s is left after down", c.netns)
	}
	for _, p := range processesNaming(c.dir, "/run/"+c.netns+"/") {
		t.Errorf("process left after down: %s", p)
	}
	if n := testutil.MountsUnder(t, c.dir); n != 0 {
		t.Errorf("%d mounts left under %s after down", n, c.dir)
	}
}

// processesNaming lists the processes whose command line contains one of
// the strings.
func processesNaming(subs ...string) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		line := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
		for _, s := range subs {
			if strings.Contains(line, s) {
				out = append(out, filepath.Base(filepath.Dir(f))+": "+line)
				break
			}
		}
	}
	return out
}

// logTails logs the end of each component's log, for a failed test.
func (c *cluster) logTails() {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "logs", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		lines := strings.Split(string(b), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("%s (last lines):\n%s", l, strings.Join(lines, "\n"))
	}
}

// kubectlCmd is kubectl in the cluster's network namespace with its admin
// kubeconfig, as `hack/local-cluster.sh kubectl` runs it.
func (c *cluster) kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	argv := append([]string{"--net=/run/netns/" + c.netns, filepath.Join(c.repo, "_output", "clients", "kubectl"),
		"--kubeconfig", filepath.Join(c.dir, "pki", "admin.kubeconfig")}, args...)
	return exec.CommandContext(ctx, "nsenter", argv...)
}

// kubectl runs kubectl to completion and returns its standard output; a
// failure fails the test with its output.
func (c *cluster) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := c.kubectlCmd(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// apply creates objects from a manifest with kubectl apply.
func (c *cluster) apply(t testing.TB, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := c.kubectlCmd(ctx, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifest)
	}
}

// crictl runs crictl against the cluster's runtime, from the node's
// namespaces.
func (c *cluster) crictl(t testing.TB, args ...string) string {
	t.Helper()
	sock := filepath.Join(c.state, "crib.sock")
	argv := append([]string{"--net=/run/netns/" + c.netns, "--mount=" + filepath.Join(c.dir, "ns", "mnt"),
		filepath.Join(c.repo, "_output", "clients", "crictl"), "--runtime-endpoint", "unix://" + sock}, args...)
	// Its standard output only: crictl warns on stderr that it has no
	// config file.
	cmd := exec.Command("nsenter", argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// waitFor polls cond every interval until it holds, failing the test with
// what last returned after timeout.
func waitFor(t testing.TB, what string, timeout, interval time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(interval)
	}
}
