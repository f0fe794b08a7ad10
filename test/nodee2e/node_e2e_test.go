package nodee2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// The specs `make test` runs (CRIB_NODE_E2E_FOCUS replaces them): a few
// minutes' worth across the CRI surface the kubelet uses — container
// lifecycle and status, exec, logs, probes, security context, volumes.
const shortFocus = `Container Runtime blackbox test on terminated container|` +
	`Pods should be submitted and removed|` +
	`Probing container should be restarted with a exec "cat /tmp/health" liveness probe|` +
	`Security Context When creating a container with runAsUser should run the container with uid 65534|` +
	`PrivilegedPod|Kubelet when scheduling a busybox command in a pod should print the output to logs|` +
	`EmptyDir volumes should support \(root,0644,tmpfs\)|Downward API volume should provide podname only|` +
	`Container Lifecycle Hook when create a pod with lifecycle hook should execute poststart exec hook properly`

// conformanceFocus and conformanceSkip select what containerd's and CRI-O's
// node e2e jobs run in parallel: the node conformance specs, without the
// serial, slow and flaky ones.
const (
	conformanceFocus = `\[NodeConformance\]`
	conformanceSkip  = `\[Flaky\]|\[Slow\]|\[Serial\]`
)

// expectedFailures may fail for every runtime on this host; a pass is fine.
var expectedFailures = []harness.ExpectedFailure{
	{Spec: `PrivilegedPod should enable privileged commands`,
		Reason: "it adds a dummy link, and this host's kernel has no dummy driver (containerd fails it too)"},
	{Spec: `Summary API when querying /stats/summary should report resource usage through the stats api`,
		Reason: "it wants PSI figures, which a cgroup v1 host has none of (containerd fails it too), and pod network and process " +
			"stats, which the kubelet takes from cAdvisor's handler for the runtime (containerd and CRI-O have one; with the " +
			"kubelet's PodAndContainerStatsFromCRI gate it takes them from crib's ListPodSandboxStats instead)"},
	{Spec: `ContainerMetrics \[LinuxOnly\] when querying /metrics/cadvisor should report container metrics`,
		Reason: "the kubelet's /metrics/cadvisor labels only the containers of runtimes cAdvisor has a handler for (containerd, " +
			"CRI-O); containerd fails it here too, its socket not being at the default path cAdvisor dials. With the " +
			"PodAndContainerStatsFromCRI gate the kubelet serves crib's ListPodSandboxMetrics and the spec skips"},
}

// TestNodeE2E runs the node e2e suite against a runtime (CRIB_NODE_E2E_RUNTIME:
// crib, the default, or containerd) inside a network namespace the test
// makes; the suite starts etcd, the API server and the namespace controller
// in its own process (loopback of that namespace) and the kubelet as its
// child. Every image comes from the test registry under its upstream name.
//
// CRIB_NODE_E2E_FOCUS and CRIB_NODE_E2E_SKIP choose the specs (default: a
// short subset; "conformance" for the node conformance specs),
// CRIB_NODE_E2E_PROCS the parallel ginkgo processes (default 4), and
// CRIB_NODE_E2E_ARTIFACTS a directory that keeps the report and the logs.
func TestNodeE2E(t *testing.T) {
	testutil.RequireRoot(t)
	clients := filepath.Join(testregistry.RepoRoot(t), "_output", "clients")
	for _, b := range []string{"e2e_node.test", "kubelet", "ginkgo", "agnhost"} {
		if _, err := os.Stat(filepath.Join(clients, b)); err != nil {
			testutil.SkipOrFail(t, b+" is not built: run hack/clients.sh")
			return
		}
	}
	focus, skip := os.Getenv("CRIB_NODE_E2E_FOCUS"), os.Getenv("CRIB_NODE_E2E_SKIP")
	switch focus {
	case "":
		focus = shortFocus
	case "conformance":
		focus = conformanceFocus
		if skip == "" {
			skip = conformanceSkip
		}
	}
	procs := 4
	if p := os.Getenv("CRIB_NODE_E2E_PROCS"); p != "" {
		var err error
		if procs, err = strconv.Atoi(p); err != nil || procs < 1 {
			t.Fatalf("CRIB_NODE_E2E_PROCS=%q is not a positive number", p)
		}
	}

	reg := testregistry.Start(t)
	for ref, img := range testregistry.NodeE2EImages(t) {
		reg.Push(t, ref, img)
	}
	// The runtime and the suite (with the kubelet it starts) share a mount
	// namespace of their own: the kubelet's mounts (the tmpfs of every
	// secret, configmap and projected volume) must be where the runtime
	// resolves them.
	dir, err := os.MkdirTemp("", "crib-node-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Made before the runtime starts, so that it goes after the runtime.
	cgroupRoot := nodeCgroup(t)
	subnet := fmt.Sprintf("10.%d.%d.0/24", 90+rand.IntN(10), rand.IntN(250))
	var n node
	switch rt := os.Getenv("CRIB_NODE_E2E_RUNTIME"); rt {
	case "", "crib":
		n = startCrib(t, reg, subnet, nodeNamespace(t, dir, cgroupRoot, harness.Binary()))
	case "containerd":
		n = startContainerd(t, reg, subnet, nodeNamespace(t, dir, cgroupRoot, ""))
	default:
		t.Fatalf("CRIB_NODE_E2E_RUNTIME=%q: want crib or containerd", rt)
	}
	addNodeAddress(t, n.netns)

	report := filepath.Join(dir, "report")
	for _, d := range []string{report, filepath.Join(dir, "kubelet-root")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	baseConfig := filepath.Join(dir, "kubelet-base.yaml")
	if err := os.WriteFile(baseConfig, []byte(kubeletConfig()), 0o644); err != nil {
		t.Fatal(err)
	}
	// The kubelet's root is /var/lib/kubelet, where specs that mount its
	// pods directory look: the node's mount namespace has the test's
	// directory there.
	kubeletFlags := "--node-ip=" + nodeIP
	// ginkgo runs a suite in the suite binary's directory, where the
	// suite writes its kubeconfig and static pods, and the suite runs the
	// kubelet beside it: both are linked into the test's directory.
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"e2e_node.test", "kubelet"} {
		if err := os.Symlink(filepath.Join(clients, b), filepath.Join(bin, b)); err != nil {
			t.Fatal(err)
		}
	}
	suite := []string{filepath.Join(clients, "ginkgo"), "--procs=" + strconv.Itoa(procs), "--timeout=3h",
		"--no-color", "--output-dir=" + report, "--json-report=report.json", "--focus=" + focus}
	if skip != "" {
		suite = append(suite, "--skip="+skip)
	}
	suite = append(suite, filepath.Join(bin, "e2e_node.test"), "--", "--container-runtime-endpoint="+n.endpoint,
		"--prepull-images=false", "--report-dir="+report, "--kubelet-config-file="+baseConfig,
		"--kubelet-flags="+kubeletFlags, "--v=2")
	// The suite joins the node's cgroup, then its namespaces.
	script := joinCgroup(cgroupRoot) + "exec nsenter " + shellJoin([]string{"--net=/run/netns/" + n.netns,
		fmt.Sprintf("--mount=/proc/%d/ns/mnt", n.pid), fmt.Sprintf("--cgroup=/proc/%d/ns/cgroup", n.pid)}) + " " + shellJoin(suite)
	log, err := os.Create(filepath.Join(dir, "node-e2e.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("the node e2e suite ran for %s against %s (log: %s)", time.Since(start).Round(time.Second), n.name, log.Name())
	if a := os.Getenv("CRIB_NODE_E2E_ARTIFACTS"); a != "" {
		keepArtifacts(t, a, dir, n)
	}

	specs, err := harness.ReadGinkgoReport(filepath.Join(report, "report.json"))
	if err != nil {
		tail, _ := os.ReadFile(log.Name())
		t.Fatalf("the node e2e suite (%v) left no report: %v\n%s", runErr, err, harness.LastLines(string(tail), 80))
	}
	failed := harness.JudgeSpecs(t, "node e2e on "+n.name, specs, nil, harness.Expected(expectedFailures))
	if runErr != nil && failed == 0 {
		tail, _ := os.ReadFile(log.Name())
		t.Errorf("the node e2e suite exited with %v and no failed spec\n%s", runErr, harness.LastLines(string(tail), 80))
	}
}

// node is the runtime under test: its CRI endpoint and the network
// namespace it runs in.
type node struct {
	name, endpoint, netns string
	pid                   int // the daemon's, whose mount namespace the suite enters
	runtime               internalapi.RuntimeService
	logs                  func() string
}

// runtimeHandlers is crib's config for the handler the suite's RuntimeClass
// specs name, which its CI configures in containerd too.
const runtimeHandlers = "runtime_handlers = [\"test-handler\"]\n"

// mirrored are the registries whose images the suite names; both runtimes
// send their pulls to the test registry.
var mirrored = []string{"registry.k8s.io", "gcr.io", "docker.io", "quay.io", "invalid.registry.k8s.io"}

func startCrib(t *testing.T, reg *testregistry.Registry, subnet, wrapper string) node {
	e := harness.NewEnv(t)
	e.Bin = wrapper
	// A hostUsers: false pod's init is root only in the pod's user
	// namespace and must search down to the state dir.
	if err := os.Chmod(e.Dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e.WithNetwork(subnet)
	e.TopLevel = runtimeHandlers
	mirror := reg.ListenIn(t, "/run/netns/"+e.Netns)
	// The suite's pods carry SELinux options for SELinux nodes (the log
	// path spec's reader type): crib runs them unlabelled, as containerd
	// does, only when told to.
	e.WriteConfig(fmt.Sprintf("\n[lsm]\nselinux_when_disabled = \"ignore\"\n\n[registry.hosts.\"_default\"]\nskip_server = true\n"+
		"[[registry.hosts.\"_default\".mirrors]]\nendpoint = \"http://%s\"\n", mirror))
	d := e.Start()
	rt := d.Clients().Runtime
	t.Cleanup(func() { harness.RemoveLeftPods(t, rt) }) // before the env goes
	return node{name: "crib", endpoint: "unix://" + e.Sock, netns: e.Netns, pid: d.Pid(), runtime: rt, logs: d.Logs.String}
}

func startContainerd(t *testing.T, reg *testregistry.Registry, subnet, wrapper string) node {
	dir := t.TempDir()
	netns := fmt.Sprintf("crib-ne2e-%d", rand.Int64N(1e9))
	harness.AddNetwork(t, netns, filepath.Join(dir, "net.d"), filepath.Join(dir, "ipam"), subnet)
	mirror := reg.ListenIn(t, "/run/netns/"+netns)
	c := harness.StartContainerd(t, harness.ContainerdConfig{Registry: mirror, Mirrors: mirrored, Netns: netns,
		CNIConfDir: filepath.Join(dir, "net.d"), SandboxImage: "registry.k8s.io/pause:3.10.2", Wrapper: wrapper,
		RuntimeHandlers: []string{"test-handler"}})
	t.Cleanup(func() { harness.RemoveLeftPods(t, c.Runtime) })
	logs := func() string { b, _ := os.ReadFile(c.Log); return string(b) }
	return node{name: "containerd", endpoint: c.Endpoint(), netns: netns, pid: c.Pid(), runtime: c.Runtime, logs: logs}
}

// addNodeAddress gives the node's network namespace an address and a
// default route, which the kubelet takes for the node's InternalIP (it
// refuses a loopback one) and the API server dials for logs and exec.
func addNodeAddress(t *testing.T, netns string) {
	for _, args := range [][]string{
		// A veth pair whose both ends stay in the namespace: Debian's
		// kernel may lack the dummy driver.
		{"link", "add", "node0", "type", "veth", "peer", "name", "node1"},
		{"addr", "add", nodeIP + "/32", "dev", "node0"},
		{"link", "set", "node0", "up"},
		{"link", "set", "node1", "up"},
		{"route", "add", "default", "dev", "node0"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", netns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s in %s: %v\n%s", strings.Join(args, " "), netns, err, out)
		}
	}
}

// nodeIP is the node's address in its network namespace, outside every pod
// subnet the tests use.
const nodeIP = "172.30.0.1"

// kubeletConfig is the base KubeletConfiguration the suite starts from: the
// values of its own default (test/e2e_node/jenkins), with eviction
// thresholds that a busy test disk does not trip. The cgroup root is "/",
// the node's cgroup namespace's; pod logs go to /var/log/pods, the node's
// mount namespace's.
func kubeletConfig() string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
cgroupRoot: /
failCgroupV1: false
failSwapOn: false
volumeStatsAggPeriod: 10s
serializeImagePulls: false
fileCheckFrequency: 10s
podCIDR: 10.100.0.0/24
evictionPressureTransitionPeriod: 30s
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`
}

// nodeCgroup makes the node's cgroup, /crib-node-e2e-<n> in every
// hierarchy, which the node's cgroup namespace is rooted at: the kubelet
// makes its /kubepods, /kubelet and /system there and moves processes
// about as on a node of its own, all inside the test's cgroup. It goes
// when the test ends, with everything in it.
func nodeCgroup(t *testing.T) string {
	root := harness.KubeletCgroupRoot(t, "crib-node-e2e")
	for _, m := range harness.CgroupMounts() {
		if err := os.MkdirAll(filepath.Join(m.Dir, root), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// joinCgroup is a shell command that moves the shell into cgroup in every
// hierarchy.
func joinCgroup(cgroup string) string {
	var b strings.Builder
	for _, m := range harness.CgroupMounts() {
		fmt.Fprintf(&b, "echo $$ > %s && ", shellJoin([]string{filepath.Join(m.Dir, cgroup, "cgroup.procs")}))
	}
	return b.String()
}

// nodeNamespace writes to dir a wrapper that runs prog with its arguments
// (or its arguments, when prog is "") as a node's runtime: in the node's
// cgroup (cgroupRoot), in a cgroup namespace rooted there, with the cgroup
// hierarchies mounted again so that the runtime and the kubelet see that
// root as "/" (the runtime itself goes to /docker-daemon, the suite's
// runtime cgroup), and in a mount namespace of its own, a slave of the
// host's (the runtime's mounts in it stay its own), where the kubelet's
// writes go to dir: the non-namespaced kernel tunables, /var/lib/kubelet
// (its root), /var/log/pods (pod
// logs) and /var/log/containers (the kubelet's log links); /run/netns is
// its own. systemd-run, which the
// suite would start the kubelet with, is hidden: systemd is not this
// host's init.
func nodeNamespace(t *testing.T, dir, cgroupRoot, prog string) string {
	var inside []string
	for _, m := range harness.CgroupMounts() {
		// The kernel refuses a hierarchy on a point it is mounted on: the
		// host's mount goes first (in this namespace only).
		inside = append(inside, fmt.Sprintf("umount -l %s && mount -t %s -o %s %s %s", m.Dir, m.Type, m.Options, m.Type, m.Dir))
		rt := filepath.Join(m.Dir, "docker-daemon")
		inside = append(inside, "mkdir -p "+rt)
		if strings.Contains(","+m.Options+",", ",cpuset,") {
			// A v1 cpuset cgroup takes no process before it has CPUs.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				inside = append(inside, fmt.Sprintf("cat %s > %s", filepath.Join(m.Dir, f), filepath.Join(rt, f)))
			}
		}
		inside = append(inside, "echo $$ > "+filepath.Join(rt, "cgroup.procs"))
	}
	inside = append(inside, harness.KernelTunableBinds(t, dir))
	if _, err := os.Stat("/usr/bin/systemd-run"); err == nil {
		inside = append(inside, "mount --bind /dev/null /usr/bin/systemd-run")
	}
	inside = append(inside, bindOver(t, "/var/lib/kubelet", filepath.Join(dir, "kubelet-root")),
		bindOver(t, "/var/log/containers", filepath.Join(dir, "container-logs")),
		bindOver(t, "/var/log/pods", filepath.Join(dir, "pod-logs")),
		// containerd pins pod network namespaces there: they go with the
		// mount namespace, whatever the runtime leaves.
		"mount -t tmpfs -o mode=0755 netns /run/netns")
	if prog != "" {
		prog = shellJoin([]string{prog}) + " "
	}
	script := "#!/bin/sh\n" + joinCgroup(cgroupRoot) + "exec unshare --cgroup --mount --propagation slave sh -c '" +
		strings.Join(inside, " && ") + ` && exec "$0" "$@"' ` + prog + `"$@"` + "\n"
	p := filepath.Join(dir, "node-namespace")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// bindOver returns a shell command binding mine over the host directory
// host in the suite's mount namespace. A host directory that does not exist
// is made, and removed when the test ends if it is still empty.
func bindOver(t *testing.T, host, mine string) string {
	if err := os.MkdirAll(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(host); os.IsNotExist(err) {
		if err := os.MkdirAll(host, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(host) })
	}
	return fmt.Sprintf("mount --bind %s %s", mine, host)
}

// keepArtifacts copies the suite's report and logs (the kubelet's is in the
// report directory) and the runtime's log to dir.
func keepArtifacts(t *testing.T, dir, suiteDir string, n node) {
	dest := filepath.Join(dir, n.name)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Error(err)
		return
	}
	out, err := exec.Command("cp", "-r", filepath.Join(suiteDir, "report"), filepath.Join(suiteDir, "node-e2e.log"), dest).CombinedOutput()
	if err != nil {
		t.Errorf("keep the suite's artifacts: %v\n%s", err, out)
	}
	_ = os.WriteFile(filepath.Join(dest, n.name+".log"), []byte(n.logs()), 0o644)
}

// shellJoin quotes args for sh.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
