package bench

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	internalapi "k8s.io/cri-api/pkg/apis"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// lifecycleRPCs are the RPCs of one cycle, in order.
var lifecycleRPCs = []string{"RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer",
	"RemoveContainer", "StopPodSandbox", "RemovePodSandbox"}

// BenchmarkPodLifecycle compares crib with Debian's containerd + runc
// through the kubelet's CRI client, each runtime in its own network
// namespace with the same CNI config (bridge, host-local, portmap):
//
// each iteration is one pod lifecycle: RunPodSandbox, CreateContainer
// (busybox, `sleep 3600`), StartContainer, StopContainer (timeout 0),
// RemoveContainer, StopPodSandbox, RemovePodSandbox; reported as p50 and
// p95 per RPC and of pod+container start to running (Run, Create and
// Start). What idle pods cost is BenchmarkPodDensity's.
//
// Run it with -benchtime 50x for the N=50.
func BenchmarkPodLifecycle(b *testing.B) {
	bed := newTestbed(b)
	b.Run("crib", func(b *testing.B) { bed.crib(b, randomSubnet(90, 24)).run(b) })
	b.Run("containerd", func(b *testing.B) { bed.containerd(b, randomSubnet(91, 24)).run(b) })
}

// testbed is what a comparison with containerd starts from: the test
// registry holding busybox and containerd's sandbox image, and the host's
// cgroup manager.
type testbed struct {
	reg            *testregistry.Registry
	busybox, pause string // image references in reg
	cg             cgroups.Manager
}

func newTestbed(b *testing.B) *testbed {
	bed := &testbed{reg: testregistry.Start(b)}
	bed.busybox, _ = bed.reg.Push(b, "bench/busybox:1", testregistry.Busybox(b, ""))
	bed.pause, _ = bed.reg.Push(b, "bench/pause:1", pauseImage(b))
	var err error
	if bed.cg, err = manager.Open("/proc/self/mountinfo"); err != nil {
		b.Fatal(err)
	}
	return bed
}

// randomSubnet is a /bits subnet at a random place in 10.second.0.0/16,
// so that runs beside each other (each in its own network namespace) do
// not share addresses.
func randomSubnet(second, bits int) string {
	size := 1 << (32 - bits) // addresses
	third := rand.IntN(256*256/size) * size / 256
	return fmt.Sprintf("10.%d.%d.0/%d", second, third, bits)
}

// crib starts a crib daemon in a network namespace of its own, with a
// bridge network of subnet for its pods, and pulls busybox into it.
func (bed *testbed) crib(b *testing.B, subnet string) *benchWorld {
	freshKernel(b)
	reg := bed.reg
	e := newEnv(b)
	e.WithNetwork(subnet)
	host := reg.ListenIn(b, "/run/netns/"+e.Netns)
	d := e.Start()
	c := d.Clients()
	w := &benchWorld{cg: bed.cg, cgroup: fmt.Sprintf("/crib-bench-%x", rand.Int64()), logDir: filepath.Join(e.Dir, "logs"),
		rt: c.Runtime, images: c.Images, image: strings.Replace(bed.busybox, reg.Host, host, 1), daemon: d.Pid(), kept: 1, logs: d.Logs,
		overhead: func(p proc) bool {
			// The daemon, every shim and pause process: crib's binary
			// (or its sealed copy under the state dir), never a container.
			return p.pid == d.Pid() || p.ppid != d.Pid() && p.comm != "sleep" &&
				(strings.Contains(p.cmdline, e.Dir+"/") || strings.Contains(p.exe, e.Dir+"/"))
		}}
	w.prepare(b)
	return w
}

// containerd is crib's counterpart for Debian's containerd + runc, with
// the testbed's pause as its sandbox image.
func (bed *testbed) containerd(b *testing.B, subnet string) *benchWorld {
	freshKernel(b)
	reg := bed.reg
	dir := b.TempDir()
	netns := fmt.Sprintf("crib-bench-ctrd-%x", rand.Int32())
	harness.AddNetwork(b, netns, filepath.Join(dir, "net.d"), filepath.Join(dir, "ipam"), subnet)
	host := reg.ListenIn(b, "/run/netns/"+netns)
	pause := strings.Replace(bed.pause, reg.Host, host, 1)
	ctrd := harness.StartContainerd(b, harness.ContainerdConfig{Registry: host, Netns: netns, CNIConfDir: filepath.Join(dir, "net.d"),
		SandboxImage: pause})
	cgroup := fmt.Sprintf("/ctrd-bench-%x", rand.Int64())
	w := &benchWorld{cg: bed.cg, cgroup: cgroup, logDir: filepath.Join(dir, "logs"), rt: ctrd.Runtime, images: ctrd.Images,
		image: strings.Replace(bed.busybox, reg.Host, host, 1), daemon: ctrd.Pid(),
		overhead: func(p proc) bool {
			// containerd, its shims, and the sandbox ("pause")
			// containers: `sleep 2147483647` in the benchmark's cgroups.
			return p.pid == ctrd.Pid() ||
				p.comm == "containerd-shim" && strings.Contains(p.cmdline, ctrd.Sock) ||
				strings.HasSuffix(p.cmdline, "sleep 2147483647") && strings.Contains(p.cgroup, cgroup+"/")
		}}
	if _, err := ctrd.Images.PullImage(context.Background(), &criapi.ImageSpec{Image: pause}, nil, nil); err != nil {
		b.Fatal(err)
	}
	w.prepare(b)
	return w
}

// pauseImage is a pod sandbox image for containerd (there is no internet
// for registry.k8s.io/pause): busybox-static whose entrypoint sleeps for
// ever. containerd stops it with SIGKILL, as it does the real pause.
func pauseImage(b *testing.B) v1.Image {
	bin, err := os.ReadFile(testregistry.BusyboxPath)
	if err != nil {
		b.Fatalf("busybox-static is needed to build the sandbox image: %v", err)
	}
	img := testregistry.Image(b, [][]testregistry.File{{
		{Name: "bin/", Mode: 0o755, Typ: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Data: bin},
		{Name: "bin/sleep", Typ: tar.TypeSymlink, Link: "busybox"},
	}})
	cfg, err := img.ConfigFile()
	if err != nil {
		b.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Entrypoint = []string{"/bin/sleep", "2147483647"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		b.Fatal(err)
	}
	return img
}

// benchWorld is one runtime under test, reached through the kubelet's
// client.
type benchWorld struct {
	cg     cgroups.Manager
	cgroup string // this run's cgroup root; pods go in <cgroup>/pod<uid>
	logDir string
	rt     internalapi.RuntimeService
	images internalapi.ImageManagerService
	image  string
	// daemon is the runtime's daemon process (crib, containerd).
	daemon int
	// kept is how many helper processes the runtime keeps with no pod:
	// crib keeps one shim process for the next pod.
	kept int
	// logs, when set, is the daemon's log, where crib reports how long
	// each run of the CNI plugins took.
	logs interface{ String() string }
	// overhead says whether a process is the runtime's (counted in the
	// density figures) rather than a container's.
	overhead func(proc) bool
}

// prepare pulls the image (untimed) and has every pod and the cgroup root
// removed when the benchmark ends, whether it passed or not.
func (w *benchWorld) prepare(b *testing.B) {
	b.Cleanup(func() {
		w.removeAll(b)
		// runc also makes cgroups under a hybrid host's cgroup2 mount.
		defer harness.RemoveUnifiedTwin(w.cgroup)
		if err := w.cg.Remove(w.cgroup); err != nil {
			b.Errorf("remove %s: %v", w.cgroup, err)
		}
	})
	if _, err := w.images.PullImage(context.Background(), &criapi.ImageSpec{Image: w.image}, nil, nil); err != nil {
		b.Fatal(err)
	}
}

func (w *benchWorld) run(b *testing.B) {
	ctx := context.Background()
	times := map[string][]time.Duration{}
	timed := func(rpc string, f func() error) {
		t := time.Now()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", rpc, err)
		}
		times[rpc] = append(times[rpc], time.Since(t))
	}
	for b.Loop() {
		b.StopTimer()
		pod := w.podConfig(b, "cycle")
		b.StartTimer()
		var podID, id string
		var err error
		timed("RunPodSandbox", func() error { podID, err = w.rt.RunPodSandbox(ctx, pod, ""); return err })
		timed("CreateContainer", func() error { id, err = w.rt.CreateContainer(ctx, podID, w.containerConfig(), pod); return err })
		timed("StartContainer", func() error { return w.rt.StartContainer(ctx, id) })
		timed("StopContainer", func() error { return w.rt.StopContainer(ctx, id, 0) })
		timed("RemoveContainer", func() error { return w.rt.RemoveContainer(ctx, id) })
		timed("StopPodSandbox", func() error { return w.rt.StopPodSandbox(ctx, podID) })
		timed("RemovePodSandbox", func() error { return w.rt.RemovePodSandbox(ctx, podID) })
		b.StopTimer()
		w.removePodCgroup(b, pod)
		b.StartTimer()
	}
	b.StopTimer()
	for _, rpc := range lifecycleRPCs {
		reportPercentiles(b, rpc, times[rpc])
	}
	toRunning := make([]time.Duration, len(times["RunPodSandbox"]))
	for i := range toRunning {
		toRunning[i] = times["RunPodSandbox"][i] + times["CreateContainer"][i] + times["StartContainer"][i]
	}
	reportPercentiles(b, "to-running", toRunning)
	w.reportOwnPart(b, times)
}

// cniRun is crib's log line for one run of the CNI plugins.
var cniRun = regexp.MustCompile(`"Ran CNI plugins" .*operation="(ADD|DEL)" podSandboxID="[0-9a-f]+" duration="([^"]+)"`)

// reportOwnPart reports the CNI plugins' time, as crib logged it, and what
// RunPodSandbox and StopPodSandbox took besides: the plugins are the same
// for every runtime, so crib's own part is what a comparison can judge.
func (w *benchWorld) reportOwnPart(b *testing.B, times map[string][]time.Duration) {
	if w.logs == nil {
		return
	}
	cni := map[string][]time.Duration{}
	for _, m := range cniRun.FindAllStringSubmatch(w.logs.String(), -1) {
		d, err := time.ParseDuration(m[2])
		if err != nil {
			b.Fatalf("CNI duration %q in the daemon's log: %v", m[2], err)
		}
		cni[m[1]] = append(cni[m[1]], d)
	}
	for rpc, op := range map[string]string{"RunPodSandbox": "ADD", "StopPodSandbox": "DEL"} {
		rpcs, ops := times[rpc], cni[op]
		if len(ops) < len(rpcs) {
			b.Fatalf("%d CNI %s runs logged for %d %s calls", len(ops), op, len(rpcs), rpc)
		}
		ops = ops[len(ops)-len(rpcs):] // the cycles' own, in order
		own := make([]time.Duration, len(rpcs))
		for i := range rpcs {
			own[i] = rpcs[i] - ops[i]
		}
		reportPercentiles(b, "cni-"+op, ops)
		reportPercentiles(b, rpc+"-without-cni", own)
	}
}

func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	b.ReportMetric(float64(percentile(d, 50).Microseconds())/1000, name+"-p50-ms")
	b.ReportMetric(float64(percentile(d, 95).Microseconds())/1000, name+"-p95-ms")
}

// percentile is the q-th percentile of d (nearest rank below), 0 for none.
func percentile(d []time.Duration, q int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Sorted(slices.Values(d))[len(d)*q/100]
}

// podConfig is a pod as the kubelet sends it for a default pod (no
// shareProcessNamespace: a pid namespace per container, so crib runs no
// pause process; containerd always runs its sandbox container), in a pod
// cgroup the kubelet made first.
func (w *benchWorld) podConfig(b *testing.B, name string) *criapi.PodSandboxConfig {
	uid := fmt.Sprintf("%x", rand.Int64())
	pod := &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: name + "-" + uid, Namespace: "bench", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(w.logDir, uid),
		DnsConfig:    &criapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"bench.svc.cluster.local"}},
		Linux: &criapi.LinuxPodSandboxConfig{CgroupParent: w.cgroup + "/pod" + uid,
			// The kubelet always sends namespace options; without them the
			// pid mode would be POD (the enum's zero value).
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &criapi.NamespaceOption{Pid: criapi.NamespaceMode_CONTAINER},
			}},
	}
	if err := os.MkdirAll(pod.LogDirectory, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := w.cg.Create(pod.Linux.CgroupParent, nil); err != nil {
		b.Fatal(err)
	}
	return pod
}

// removePodCgroup is the kubelet's part after RemovePodSandbox.
func (w *benchWorld) removePodCgroup(b *testing.B, pod *criapi.PodSandboxConfig) {
	if err := w.cg.Remove(pod.Linux.CgroupParent); err != nil {
		b.Fatal(err)
	}
	_ = os.RemoveAll(pod.LogDirectory)
}

func (w *benchWorld) containerConfig() *criapi.ContainerConfig {
	return &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "sleeper"},
		Image:    &criapi.ImageSpec{Image: w.image},
		Command:  []string{"sleep", "3600"},
		LogPath:  "sleeper.log",
	}
}

// removeAll stops and removes every pod the runtime knows of.
func (w *benchWorld) removeAll(b *testing.B) {
	ctx := context.Background()
	pods, err := w.rt.ListPodSandbox(ctx, nil)
	if err != nil {
		b.Errorf("list pods: %v", err)
		return
	}
	for _, p := range pods {
		err := errors.Join(w.rt.StopPodSandbox(ctx, p.Id), w.rt.RemovePodSandbox(ctx, p.Id))
		if err != nil {
			b.Errorf("remove pod %s: %v", p.Id, err)
		}
	}
}

// proc is one process as the density figures need it.
type proc struct {
	pid, ppid          int
	comm, cmdline, exe string
	cgroup             string
	pssKB, rssKB       int
	cpuTicks           int // user + system time, in clock ticks (1/100 s)
}

// procs lists every process with its memory from smaps_rollup (Pss is the
// process's share of each page it maps: shared pages of one binary are
// split between the processes that map them, so the sum over processes is
// the memory they cost together).
func procs() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", ent.Name())
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		lp, rp := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if lp < 0 || rp < lp {
			continue
		}
		p := proc{pid: pid, comm: s[lp+1 : rp]}
		if f := strings.Fields(s[rp+1:]); len(f) > 12 {
			// Fields 4, 14 and 15 of proc(5): ppid, utime, stime.
			p.ppid, _ = strconv.Atoi(f[1])
			utime, _ := strconv.Atoi(f[11])
			stime, _ := strconv.Atoi(f[12])
			p.cpuTicks = utime + stime
		}
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		p.cmdline = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		p.exe, _ = os.Readlink(filepath.Join(dir, "exe"))
		cg, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
		p.cgroup = string(cg)
		rollup, err := os.ReadFile(filepath.Join(dir, "smaps_rollup"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		for _, line := range strings.Split(string(rollup), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "Pss:":
				p.pssKB, _ = strconv.Atoi(f[1])
			case "Rss:":
				p.rssKB, _ = strconv.Atoi(f[1])
			}
		}
		out = append(out, p)
	}
	return out
}
