package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// densitySubnetBits sizes the pods' network: a /22 has 1021 addresses
// for pods (the bridge's gateway takes one), and a Linux bridge takes at
// most 1024 ports (BR_MAX_PORTS), so a run is limited to maxDensityPods.
const (
	densitySubnetBits = 22
	maxDensityPods    = 1000
)

// BenchmarkPodDensity compares how fast crib and Debian's containerd +
// runc fill a node with idle pods and empty it again, and what the idle
// pods cost, in one run, each runtime set up as for BenchmarkPodLifecycle
// (its own network namespace, the same CNI config, here on a /22):
//
//   - CRIB_DENSITY_PODS pods (default 50), started by CRIB_DENSITY_WORKERS
//     goroutines (default 4) as a kubelet's pod workers would: per pod
//     RunPodSandbox, CreateContainer (busybox, `sleep 3600`) and
//     StartContainer, pid mode CONTAINER, in a pod cgroup made before the
//     first reading (the kubelet's part, untimed). Reported: pods per
//     second from the first RunPodSandbox to the last StartContainer, and
//     p50 / p95 of one pod's start to running;
//   - after 5 s of idle, per pod: the drop of /proc/meminfo's MemAvailable
//     (host-wide: whatever else the host does moves it); on a v1 memory
//     hierarchy the same drop as charged to memory cgroups, which the
//     host's other work does not move: the daemon's (from the warm-up on,
//     with everything it starts) and the pods'; the PSS and RSS of the
//     runtime's own processes (daemon, shims, pause or sandbox processes;
//     not the containers), the daemon's included;
//   - the same workers tear the pods down, StopPodSandbox (which stops the
//     container) and RemovePodSandbox: teardown pods per second and p50 /
//     p95 of each RPC.
//
// One pod is run and removed before the first reading, so that what a
// runtime makes once (the bridge, CNI's state) is no pod's cost.
// `-bench 'PodDensity/crib$'` runs crib alone (for sizes containerd takes
// too long at). CRIB_BENCH_CONFIG is TOML tables for crib's config (newEnv).
//
//	make build && CRIB_BIN=$PWD/bin/crib CRIB_DENSITY_PODS=200 go test -run '^$' -bench PodDensity -benchtime 1x -v -timeout 30m ./test/bench/
func BenchmarkPodDensity(b *testing.B) {
	n := harness.EnvCount(b, "CRIB_DENSITY_PODS", 50)
	workers := harness.EnvCount(b, "CRIB_DENSITY_WORKERS", 4)
	if n > maxDensityPods {
		b.Fatalf("CRIB_DENSITY_PODS=%d: at most %d pods fit one bridge and its /%d", n, maxDensityPods, densitySubnetBits)
	}
	checkHostLimits(b, n)
	bed := newTestbed(b)
	b.Run("crib", func(b *testing.B) { bed.crib(b, randomSubnet(94, densitySubnetBits)).density(b, n, workers) })
	b.Run("containerd", func(b *testing.B) { bed.containerd(b, randomSubnet(95, densitySubnetBits)).density(b, n, workers) })
}

// densityPod is one pod of the density run and its timings.
type densityPod struct {
	cfg                     *criapi.PodSandboxConfig
	id                      string
	toRunning, stop, remove time.Duration
}

// densityFigures are one run's measurements.
type densityFigures struct {
	up, down time.Duration // fill and teardown, wall time
	// availDropKB is MemAvailable's drop (host-wide); chargedKB the
	// memory cgroups' charges of the runtime's processes and the pods'
	// cgroups (-1 without the v1 memory hierarchy).
	availDropKB, chargedKB int
	procs, pssKB, rssKB    int // the runtime's processes
	// idleCPU is the CPU time the runtime's processes used in the 5 s
	// of idle, over those 5 s (1 is one core).
	idleCPU float64
	// fillCPU is the host's busy CPU time during the fill (every process
	// and the kernel's own work: the runtime, its CNI plugins, the
	// containers' start, this client): steadier than pods/s on a host
	// whose scheduling moves the wall time by a fifth from run to run.
	fillCPU time.Duration
	// dyingMemcgs is how many more memory cgroups the kernel holds after
	// the pods and their cgroups are gone than before the warm-up: removed
	// cgroups still charged with page cache. Negative when other cgroups
	// were freed meanwhile; not counted (counted false) without a v1
	// memory controller.
	dyingMemcgs int
	counted     bool
}

// density runs n idle pods with the given number of workers, measures
// them and tears them down. The benchmark's cleanup (prepare) removes
// whatever a failure leaves.
func (w *benchWorld) density(b *testing.B, n, workers int) {
	ctx := context.Background()
	memcg := w.chargeApart(b)
	// The world was set up from dropped caches (freshKernel); the
	// warm-up reads the binaries back.
	memcgs := settledMemcgCount()
	warmup := &densityPod{cfg: w.podConfig(b, "warmup")}
	if err := w.startPod(ctx, warmup); err != nil {
		b.Fatalf("warm-up pod: %v", err)
	}
	w.removeAll(b)
	w.waitGone(b)
	w.removePodCgroup(b, warmup.cfg)
	// The kubelet's pod cgroups are made before the first reading: the
	// figures are what the runtime and the containers add.
	pods := make([]densityPod, n)
	for i := range pods {
		pods[i].cfg = w.podConfig(b, fmt.Sprintf("idle%d", i))
	}
	// The figures move with the host's other work: say how much there is.
	b.Logf("load average before the fill: %s", strings.Join(strings.Fields(readFile(b, "/proc/loadavg"))[:3], " "))
	var f densityFigures
	charged := w.charged(memcg)
	avail := keyed("/proc/meminfo", 1)["MemAvailable"]
	busy := hostBusy(b)
	f.up = parallel(b, n, workers, func(i int) error { return w.startPod(ctx, &pods[i]) })
	f.fillCPU = hostBusy(b) - busy
	ticks, idle := w.cpuTicks(), time.Now()
	time.Sleep(5 * time.Second) // start-up work and GC settle
	f.idleCPU = float64(w.cpuTicks()-ticks) / 100 / time.Since(idle).Seconds()
	f.availDropKB = avail - keyed("/proc/meminfo", 1)["MemAvailable"]
	if f.chargedKB = -1; memcg != "" {
		f.chargedKB = w.charged(memcg) - charged
	}
	f.procs, f.pssKB, f.rssKB = w.overheadBreakdown(b)
	f.down = parallel(b, n, workers, func(i int) error { return w.stopPod(ctx, &pods[i]) })
	w.waitGone(b)
	for _, p := range pods {
		w.removePodCgroup(b, p.cfg)
	}
	if f.counted = memcgs >= 0; f.counted {
		f.dyingMemcgs = memcgCount() - memcgs
	}
	w.reportDensity(b, pods, workers, f)
}

// settledMemcgCount is memcgCount once the kernel has freed the removed
// cgroups that dropping the caches released (it frees them in the
// background): the first of two readings 100 ms apart that agree, or the
// last reading after 5 s.
func settledMemcgCount() int {
	n := memcgCount()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		m := memcgCount()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// memcgCount is the memory controller's cgroup count from /proc/cgroups,
// those removed but not yet freed included; -1 where the controller is
// not on a v1 hierarchy (hierarchy 0: cgroup v2 counts dying cgroups in
// cgroup.stat).
func memcgCount() int {
	if keyed("/proc/cgroups", 1)["memory"] == 0 {
		return -1
	}
	return keyed("/proc/cgroups", 2)["memory"]
}

// chargeApart moves the runtime's daemon into a v1 memory cgroup of its
// own, where it and the shims, pause processes and CNI plugins it starts
// from now on are charged (user pages and kernel objects) apart from
// whatever else the host runs: a measure of the MemAvailable drop that
// the host's other work does not move. "" without the v1 hierarchy.
func (w *benchWorld) chargeApart(b *testing.B) string {
	if _, err := os.Stat(filepath.Join(memcgRoot, "memory.usage_in_bytes")); err != nil {
		return ""
	}
	dir := filepath.Join(memcgRoot, fmt.Sprintf("crib-density-%x", rand.Int64()))
	makeMemcg(b, dir)
	chargeTo(b, dir, w.daemon)
	return dir
}

// charged is what memcg (the runtime's processes) and the pods' cgroups
// are charged, in kB.
func (w *benchWorld) charged(memcg string) int {
	if memcg == "" {
		return 0
	}
	return (memcgCounters(memcg)["usage_in_bytes"] + memcgCounters(filepath.Join(memcgRoot, w.cgroup))["usage_in_bytes"]) / 1024
}

// cpuTicks is the CPU time the runtime's processes have used.
func (w *benchWorld) cpuTicks() int {
	t := 0
	for _, p := range procs() {
		if w.overhead(p) {
			t += p.cpuTicks
		}
	}
	return t
}

// waitGone waits for the runtime's processes other than the daemon (and
// those it keeps with no pod) to exit after the last RemovePodSandbox (a
// shim exits after it answers its shutdown) and fails the benchmark if
// any more are left after 10 s.
func (w *benchWorld) waitGone(b *testing.B) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, p := range procs() {
			if w.overhead(p) && p.pid != w.daemon {
				left = append(left, fmt.Sprintf("%d (%s)", p.pid, p.cmdline))
			}
		}
		if len(left) <= w.kept {
			return
		}
		if time.Now().After(deadline) {
			b.Errorf("%d of the runtime's processes left 10 s after the pods were removed: %s", len(left), strings.Join(left, ", "))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startPod is what one pod worker does for a new pod.
func (w *benchWorld) startPod(ctx context.Context, p *densityPod) error {
	t := time.Now()
	id, err := w.rt.RunPodSandbox(ctx, p.cfg, "")
	if err != nil {
		return fmt.Errorf("run pod sandbox: %w", err)
	}
	p.id = id
	cid, err := w.rt.CreateContainer(ctx, id, w.containerConfig(), p.cfg)
	if err != nil {
		return fmt.Errorf("create container in pod %s: %w", id, err)
	}
	if err := w.rt.StartContainer(ctx, cid); err != nil {
		return fmt.Errorf("start container %s: %w", cid, err)
	}
	p.toRunning = time.Since(t)
	return nil
}

// stopPod is what one pod worker does for a deleted pod.
func (w *benchWorld) stopPod(ctx context.Context, p *densityPod) error {
	t := time.Now()
	if err := w.rt.StopPodSandbox(ctx, p.id); err != nil {
		return fmt.Errorf("stop pod sandbox %s: %w", p.id, err)
	}
	p.stop = time.Since(t)
	t = time.Now()
	if err := w.rt.RemovePodSandbox(ctx, p.id); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", p.id, err)
	}
	p.remove = time.Since(t)
	return nil
}

// parallel runs f for 0..n-1 on workers goroutines and returns the wall
// time; the first error stops every worker at its next pod and fails the
// benchmark with the pod's index.
func parallel(b *testing.B, n, workers int, f func(i int) error) time.Duration {
	var (
		next   atomic.Int64
		failed atomic.Bool
		errMu  sync.Mutex // guards first
		first  error
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range min(workers, n) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("pod %d of %d: %w", i, n, err)
					}
					errMu.Unlock()
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return time.Since(start)
}

// overheadBreakdown sums PSS and RSS (kB) over the runtime's own
// processes and logs them by kind (command line up to its first flag).
func (w *benchWorld) overheadBreakdown(b *testing.B) (n, pss, rss int) {
	type kind struct {
		n, pss, rss int
		example     proc
	}
	kinds := map[string]*kind{}
	for _, p := range procs() {
		if !w.overhead(p) {
			continue
		}
		n, pss, rss = n+1, pss+p.pssKB, rss+p.rssKB
		name, _, _ := strings.Cut(p.cmdline, " -")
		k := kinds[name]
		if k == nil {
			k = &kind{example: p}
			kinds[name] = k
		}
		k.n, k.pss, k.rss = k.n+1, k.pss+p.pssKB, k.rss+p.rssKB
	}
	for name, k := range kinds {
		b.Logf("%3d × %-40.40q PSS %6d kB (%5d each)  RSS %6d kB (%5d each); e.g. pid %d, parent %d, exe %s", k.n, name, k.pss, k.pss/k.n, k.rss, k.rss/k.n,
			k.example.pid, k.example.ppid, k.example.exe)
	}
	return n, pss, rss
}

func (w *benchWorld) reportDensity(b *testing.B, pods []densityPod, workers int, f densityFigures) {
	n := float64(len(pods))
	var toRunning, stop, remove []time.Duration
	for _, p := range pods {
		toRunning, stop, remove = append(toRunning, p.toRunning), append(stop, p.stop), append(remove, p.remove)
	}
	b.ReportMetric(n/f.up.Seconds(), "pods/s")
	b.ReportMetric(float64(f.fillCPU.Microseconds())/1000/n, "fill-cpu-ms/pod")
	reportPercentiles(b, "to-running", toRunning)
	b.ReportMetric(float64(f.availDropKB)/n, "memavail-drop-KiB/pod")
	charged := "not measured"
	if f.chargedKB >= 0 {
		b.ReportMetric(float64(f.chargedKB)/n, "memcg-KiB/pod")
		charged = fmt.Sprintf("%d KiB/pod", f.chargedKB/len(pods))
	}
	b.ReportMetric(float64(f.pssKB)/n/1024, "idle-pss-MiB/pod")
	b.ReportMetric(float64(f.rssKB)/n/1024, "idle-rss-MiB/pod")
	b.ReportMetric(float64(f.procs), "runtime-procs")
	b.ReportMetric(100*f.idleCPU, "idle-cpu-%")
	b.ReportMetric(n/f.down.Seconds(), "teardown-pods/s")
	reportPercentiles(b, "StopPodSandbox", stop)
	reportPercentiles(b, "RemovePodSandbox", remove)
	dying := "not counted"
	if f.counted {
		b.ReportMetric(float64(f.dyingMemcgs)/n, "dying-memcgs/pod")
		dying = fmt.Sprintf("%.2f per pod", float64(f.dyingMemcgs)/n)
	}
	b.Logf("%d pods, %d workers: up %.1f pods/s (host CPU %.1f ms per pod), to running p50 %v p95 %v; idle: MemAvailable %+d KiB/pod, memory cgroups %s, PSS %.2f MiB/pod, RSS %.2f MiB/pod, %d processes, CPU %.1f%%; down %.1f pods/s, StopPodSandbox p50 %v p95 %v, RemovePodSandbox p50 %v p95 %v; dying memory cgroups left %s",
		len(pods), workers, n/f.up.Seconds(), float64(f.fillCPU.Microseconds())/1000/n, ms(percentile(toRunning, 50)), ms(percentile(toRunning, 95)), -f.availDropKB/len(pods), charged,
		float64(f.pssKB)/n/1024, float64(f.rssKB)/n/1024, f.procs, 100*f.idleCPU, n/f.down.Seconds(),
		ms(percentile(stop, 50)), ms(percentile(stop, 95)), ms(percentile(remove, 50)), ms(percentile(remove, 95)), dying)
}

// hostBusy is the CPU time the host has been busy since boot, all CPUs
// together: /proc/stat's user, nice, system, irq and softirq (not idle,
// iowait or the hypervisor's steal).
func hostBusy(b *testing.B) time.Duration {
	f := strings.Fields(strings.SplitN(readFile(b, "/proc/stat"), "\n", 2)[0])
	if len(f) < 8 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", f)
	}
	ticks := 0
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.Atoi(f[i])
		if err != nil {
			b.Fatalf("/proc/stat: %v", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}

// ms rounds d to 0.1 ms for a log line.
func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

// checkHostLimits fails at once, with the limit named, where this host
// cannot hold n pods: tasks (pid_max, threads-max; every shim thread is a
// task) and open files (the daemons inherit this process's limit).
func checkHostLimits(b *testing.B, n int) {
	// A containerd pod is a shim of ~12 threads, a sandbox and a
	// container; crib's fewer. 32 per pod leaves room.
	const tasksPerPod, filesPerPod = 32, 8
	// The fourth field of loadavg is running/total tasks.
	loadavg := strings.Fields(readFile(b, "/proc/loadavg"))
	_, total, _ := strings.Cut(loadavg[3], "/")
	tasks, err := strconv.Atoi(total)
	if err != nil {
		b.Fatalf("/proc/loadavg: %q", loadavg)
	}
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		limit, err := strconv.Atoi(strings.TrimSpace(readFile(b, f)))
		if err != nil {
			b.Fatalf("%s: %v", f, err)
		}
		if tasks+n*tasksPerPod > limit {
			b.Fatalf("%d pods need about %d tasks, %d run already: %s is %d", n, n*tasksPerPod, tasks, f, limit)
		}
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if int(lim.Max) < n*filesPerPod+1024 {
		b.Fatalf("%d pods need about %d open files in a daemon: RLIMIT_NOFILE is %d (ulimit -Hn)", n, n*filesPerPod+1024, lim.Max)
	}
	// On cgroup v2, containerd's shim watches each container's
	// memory.events with an inotify instance of its own, counted per
	// user; crib uses none, nor does containerd on a v1 or hybrid host.
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if limit, _ := strconv.Atoi(strings.TrimSpace(readFile(b, "/proc/sys/fs/inotify/max_user_instances"))); limit < n+64 {
			b.Logf("fs.inotify.max_user_instances is %d: containerd's shims on cgroup v2 may run out at %d pods", limit, n)
		}
	}
}

func readFile(b *testing.B, name string) string {
	data, err := os.ReadFile(name)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}
