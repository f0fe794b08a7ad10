package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/testregistry"
)

// memcgRoot is the v1 memory hierarchy; the breakdown needs its kmem
// counters, which cgroup v2 folds into memory.current.
const memcgRoot = "/sys/fs/cgroup/memory"

// BenchmarkPodMemory breaks the cost of one idle crib pod into its parts
// (docs/benchmarks.md, "Where an idle pod's memory goes"): crib alone,
// CRIB_PODMEM_PODS idle pods (default 20) of one `sleep` container, once
// with pid mode CONTAINER (the kubelet's default: no pause process) and
// once with POD. The daemon is started in a v1 memory cgroup of the
// benchmark's own, so everything it and its children (shims, pause,
// CNI plugins) charge, user pages and kernel objects (namespaces,
// veths, mounts, tasks, sockets), is counted there apart from the
// host's other work; the containers are charged to their cgroups under
// the benchmark's cgroup root. Only a v1 (hybrid) host has the kmem
// counters it reads. Host-wide /proc/meminfo deltas are logged too (they
// mean something only on an otherwise idle host).
//
// CRIB_PODMEM_CONTAINERS=k gives each pod k containers: what one more
// container costs a shim, an upper bound of what one more pod would cost a
// shim shared by several pods.
//
// CRIB_PODMEM_DUMP=1 also has one shim of each mode dump its goroutines
// (SIGQUIT, so that pod is then removed as one whose shim died) and logs
// the dump, with any GODEBUG=gctrace=1 lines of its log.
//
//	make build && CRIB_BIN=$PWD/bin/crib go test -run '^$' -bench PodMemory -benchtime 1x -v ./test/bench/
func BenchmarkPodMemory(b *testing.B) {
	if _, err := os.Stat(filepath.Join(memcgRoot, "memory.kmem.usage_in_bytes")); err != nil {
		b.Skip("needs the v1 memory hierarchy with kmem accounting")
	}
	n := 20
	if s := os.Getenv("CRIB_PODMEM_PODS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("CRIB_PODMEM_PODS=%q", s)
		}
	}
	perPod := 1 // containers per pod: CRIB_PODMEM_CONTAINERS
	if s := os.Getenv("CRIB_PODMEM_CONTAINERS"); s != "" {
		var err error
		if perPod, err = strconv.Atoi(s); err != nil || perPod < 1 {
			b.Fatalf("CRIB_PODMEM_CONTAINERS=%q", s)
		}
	}
	reg := testregistry.Start(b)
	busybox, _ := reg.Push(b, "bench/busybox:1", testregistry.Busybox(b, ""))
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b)
	e.WithNetwork(randomSubnet(92, 24))
	host := reg.ListenIn(b, "/run/netns/"+e.Netns)
	daemonCg := filepath.Join(memcgRoot, filepath.Base(e.Dir)+"-daemon")
	enterMemcg(b, daemonCg)
	d := e.Start()
	leaveMemcg(b)
	c := d.Clients()
	w := &benchWorld{cg: cg, cgroup: fmt.Sprintf("/crib-podmem-%x", rand.Int64()), logDir: filepath.Join(e.Dir, "logs"),
		rt: c.Runtime, images: c.Images, image: strings.Replace(busybox, reg.Host, host, 1)}
	w.prepare(b)
	// One pod first: what the daemon makes once (the bridge, CNI's state,
	// its connections) is no pod's cost.
	w.idlePods(b, 1, 1, criapi.NamespaceMode_CONTAINER)
	w.removeAll(b)
	for _, mode := range []criapi.NamespaceMode{criapi.NamespaceMode_CONTAINER, criapi.NamespaceMode_POD} {
		b.Run("pid="+mode.String(), func(b *testing.B) {
			before := snapshot(d.Pid(), e.Dir, daemonCg, w.cgroup)
			pods := w.idlePods(b, n, perPod, mode)
			time.Sleep(5 * time.Second) // start-up work and GC settle
			after := snapshot(d.Pid(), e.Dir, daemonCg, w.cgroup)
			report(b, n, before, after)
			if os.Getenv("CRIB_PODMEM_DUMP") != "" && len(after.shims) > 0 {
				dumpGoroutines(b, after.shims[0].pid)
			}
			w.removeAll(b)
			for _, pod := range pods {
				w.removePodCgroup(b, pod)
			}
		})
	}
}

// idlePods runs n pods of k sleeping containers each in pid mode mode.
func (w *benchWorld) idlePods(b *testing.B, n, k int, mode criapi.NamespaceMode) []*criapi.PodSandboxConfig {
	ctx := context.Background()
	var pods []*criapi.PodSandboxConfig
	for range n {
		pod := w.podConfig(b, "idle")
		pod.Linux.SecurityContext.NamespaceOptions.Pid = mode
		pods = append(pods, pod)
		podID, err := w.rt.RunPodSandbox(ctx, pod, "")
		if err != nil {
			b.Fatal(err)
		}
		for i := range k {
			cfg := w.containerConfig()
			cfg.Metadata.Name = fmt.Sprintf("sleeper-%d", i)
			cfg.LogPath = cfg.Metadata.Name + ".log"
			id, err := w.rt.CreateContainer(ctx, podID, cfg, pod)
			if err != nil {
				b.Fatal(err)
			}
			if err := w.rt.StartContainer(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	}
	return pods
}

// memSnapshot is what the breakdown compares before and after the pods.
type memSnapshot struct {
	meminfo map[string]int // kB
	// daemon and containers: the memory cgroups' counters (bytes), the
	// daemon's with its shims and pause processes, the containers' under
	// the benchmark's cgroup root.
	daemon, containers map[string]int
	cgroupDirs         map[string]int // per v1 hierarchy, under the benchmark's root
	mounts             int            // in the daemon's mount namespace, under the env's directory
	daemonPSS          int            // kB
	daemonMem          procMem
	shims, pauses      []procMem
	netdevs            int // in the daemon's network namespace
}

// procMem is one helper process's memory: smaps_rollup, status, and its
// resident pages by kind of mapping from smaps.
type procMem struct {
	pid                            int
	pss, pssAnon, pssFile, rss     int // kB
	threads, pteKB                 int
	goArena, otherAnon, fileMapped int // Rss kB by mapping: the Go heap arena (heap spans and goroutine stacks), other anonymous (runtime metadata, thread stacks, brk), files (the binary)
}

func snapshot(daemonPid int, envDir, daemonCg, benchCg string) memSnapshot {
	s := memSnapshot{meminfo: keyed("/proc/meminfo", 1), cgroupDirs: map[string]int{}}
	s.daemon = memcgCounters(daemonCg)
	s.containers = memcgCounters(filepath.Join(memcgRoot, benchCg))
	hier, _ := filepath.Glob("/sys/fs/cgroup/*" + benchCg)
	for _, h := range hier {
		_ = filepath.WalkDir(h, func(_ string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				s.cgroupDirs[filepath.Base(filepath.Dir(h))]++
			}
			return nil
		})
	}
	if mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", daemonPid)); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			if strings.Contains(line, envDir+"/") {
				s.mounts++
			}
		}
	}
	if dev, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", daemonPid)); err == nil {
		s.netdevs = strings.Count(string(dev), "\n") - 2
	}
	all := procs()
	shims := map[int]bool{}
	for _, p := range all {
		switch {
		case p.pid == daemonPid:
			s.daemonPSS = p.pssKB
			s.daemonMem = readProcMem(p.pid)
		case strings.Contains(p.cmdline, " shim --dir ") && strings.Contains(p.cmdline, envDir+"/"):
			shims[p.pid] = true
			s.shims = append(s.shims, readProcMem(p.pid))
		}
	}
	for _, p := range all {
		// A shim's children are its containers' inits (here `sleep`) and
		// the pause process.
		if shims[p.ppid] && p.comm != "sleep" {
			s.pauses = append(s.pauses, readProcMem(p.pid))
		}
	}
	return s
}

func memcgCounters(dir string) map[string]int {
	m := keyed(filepath.Join(dir, "memory.stat"), 1)
	for _, f := range []string{"usage_in_bytes", "kmem.usage_in_bytes", "kmem.tcp.usage_in_bytes"} {
		b, _ := os.ReadFile(filepath.Join(dir, "memory."+f))
		m[f], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return m
}

// keyed reads "key value" or "key: value kB" lines.
func keyed(file string, col int) map[string]int {
	m := map[string]int{}
	b, _ := os.ReadFile(file)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > col {
			m[strings.TrimSuffix(f[0], ":")], _ = strconv.Atoi(f[col])
		}
	}
	return m
}

var mapping = regexp.MustCompile(`^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$`)

func readProcMem(pid int) procMem {
	p := procMem{pid: pid}
	r := keyed(fmt.Sprintf("/proc/%d/smaps_rollup", pid), 1)
	p.pss, p.pssAnon, p.pssFile, p.rss = r["Pss"], r["Pss_Anon"], r["Pss_File"], r["Rss"]
	st := keyed(fmt.Sprintf("/proc/%d/status", pid), 1)
	p.threads, p.pteKB = st["Threads"], st["VmPTE"]
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return p
	}
	defer f.Close()
	kind := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := mapping.FindStringSubmatch(line); m != nil {
			start, _ := strconv.ParseUint(m[1], 16, 64)
			switch {
			case strings.HasPrefix(m[2], "/"):
				kind = "file"
			case m[2] == "" && start >= 1<<32 && start < 0x7f0000000000:
				// Go's heap arena: at a random address (Go 1.26) below
				// the mmap area, where thread stacks and the runtime's
				// metadata live.
				kind = "arena"
			default:
				kind = "anon"
			}
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok {
			kb, _ := strconv.Atoi(strings.Fields(v)[0])
			switch kind {
			case "file":
				p.fileMapped += kb
			case "arena":
				p.goArena += kb
			default:
				p.otherAnon += kb
			}
		}
	}
	return p
}

func report(b *testing.B, n int, before, after memSnapshot) {
	per := func(a, z int) float64 { return float64(z-a) / float64(n) }
	for _, k := range []string{"MemAvailable", "MemFree", "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "Percpu", "Shmem", "AnonPages"} {
		b.Logf("meminfo %-13s %+8.0f kB per pod (host-wide: other work moves it)", k, per(before.meminfo[k], after.meminfo[k]))
	}
	b.ReportMetric(-per(before.meminfo["MemAvailable"], after.meminfo["MemAvailable"]), "memavail-drop-kB/pod")
	for _, w := range []struct {
		name string
		a, z map[string]int
	}{{"daemon cgroup (daemon, shims, pause, plugins)", before.daemon, after.daemon}, {"containers' cgroups", before.containers, after.containers}} {
		b.Logf("%s: usage %+.0f kB, kmem %+.0f kB (tcp %+.0f), rss %+.0f kB, cache %+.0f kB (shmem %+.0f), mapped_file %+.0f kB per pod", w.name,
			per(w.a["usage_in_bytes"], w.z["usage_in_bytes"])/1024, per(w.a["kmem.usage_in_bytes"], w.z["kmem.usage_in_bytes"])/1024,
			per(w.a["kmem.tcp.usage_in_bytes"], w.z["kmem.tcp.usage_in_bytes"])/1024,
			per(w.a["rss"], w.z["rss"])/1024, per(w.a["cache"], w.z["cache"])/1024, per(w.a["shmem"], w.z["shmem"])/1024,
			per(w.a["mapped_file"], w.z["mapped_file"])/1024)
	}
	b.ReportMetric(per(before.daemon["usage_in_bytes"], after.daemon["usage_in_bytes"])/1024, "daemon-cg-kB/pod")
	b.ReportMetric(per(before.daemon["kmem.usage_in_bytes"], after.daemon["kmem.usage_in_bytes"])/1024, "daemon-cg-kmem-kB/pod")
	b.ReportMetric(per(before.containers["usage_in_bytes"], after.containers["usage_in_bytes"])/1024, "ctr-cg-kB/pod")
	b.ReportMetric(per(before.containers["kmem.usage_in_bytes"], after.containers["kmem.usage_in_bytes"])/1024, "ctr-cg-kmem-kB/pod")
	hier := slices.Sorted(func(yield func(string) bool) {
		for h := range after.cgroupDirs {
			if !yield(h) {
				return
			}
		}
	})
	for _, h := range hier {
		b.Logf("cgroup dirs in %-8s %+.1f per pod (the kubelet's pod cgroup included)", h, per(before.cgroupDirs[h], after.cgroupDirs[h]))
	}
	b.ReportMetric(per(before.cgroupDirs["memory"], after.cgroupDirs["memory"]), "memcgs/pod")
	b.Logf("mounts under the env's directory %+.1f per pod; links in its netns %+.1f per pod; daemon PSS %+.0f kB per pod",
		per(before.mounts, after.mounts), per(before.netdevs, after.netdevs), per(before.daemonPSS, after.daemonPSS))
	b.Logf("daemon PSS before %d kB (anonymous %d, its binary's pages %d), after %d kB (anonymous %d, binary %d)",
		before.daemonMem.pss, before.daemonMem.pssAnon, before.daemonMem.pssFile, after.daemonMem.pss, after.daemonMem.pssAnon, after.daemonMem.pssFile)
	for _, g := range []struct {
		name  string
		procs []procMem
	}{{"shim", after.shims}, {"pause", after.pauses}} {
		if len(g.procs) == 0 {
			continue
		}
		var t procMem
		for _, p := range g.procs {
			t.pss, t.pssAnon, t.pssFile, t.rss, t.threads = t.pss+p.pss, t.pssAnon+p.pssAnon, t.pssFile+p.pssFile, t.rss+p.rss, t.threads+p.threads
			t.pteKB += p.pteKB
			t.goArena, t.otherAnon, t.fileMapped = t.goArena+p.goArena, t.otherAnon+p.otherAnon, t.fileMapped+p.fileMapped
		}
		k := len(g.procs)
		b.Logf("%d × %s: PSS %d kB each (anon %d, file %d), RSS %d kB (Go arena %d, other anon %d, files %d), %.1f threads, page tables %d kB; e.g. pid %d",
			k, g.name, t.pss/k, t.pssAnon/k, t.pssFile/k, t.rss/k, t.goArena/k, t.otherAnon/k, t.fileMapped/k, float64(t.threads)/float64(k), t.pteKB/k, g.procs[0].pid)
		b.ReportMetric(float64(t.pss)/float64(k), g.name+"-pss-kB")
	}
}

// enterMemcg makes dir, a v1 memory cgroup, and moves this process into
// it, so that what it starts next (the daemon) is charged there.
func enterMemcg(b *testing.B, dir string) {
	makeMemcg(b, dir)
	chargeTo(b, dir, os.Getpid())
}

// makeMemcg makes dir, a v1 memory cgroup; the cleanup moves whatever is
// left in it to the root and removes it.
func makeMemcg(b *testing.B, dir string) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		// The daemon is gone by now, or about to be; a shim a failed run
		// left is moved out (the env's cleanup kills it).
		for range 50 {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			procsB, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, pid := range strings.Fields(string(procsB)) {
				_ = os.WriteFile(filepath.Join(memcgRoot, "cgroup.procs"), []byte(pid), 0)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.Errorf("remove memory cgroup %s: still busy", dir)
	})
}

// chargeTo moves process pid (all its threads) into the v1 memory cgroup
// dir: what it and the children it starts from then on charge is counted
// there (what it charged before stays where it was).
func chargeTo(b *testing.B, dir string, pid int) {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		b.Fatalf("move %d to memory cgroup %s: %v", pid, dir, err)
	}
}

// leaveMemcg moves this process back to the memory cgroup it came from
// (what it charged stays with the cgroup it was charged in).
var origMemcg = func() string {
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && f[1] == "memory" {
			return f[2]
		}
	}
	return "/"
}()

func leaveMemcg(b *testing.B) {
	if err := os.WriteFile(filepath.Join(memcgRoot, origMemcg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		b.Fatal(err)
	}
}

// dumpGoroutines has one shim dump its goroutines and exit (SIGQUIT) and
// logs the dump's summary: the pod it served is then removed as a pod
// whose shim died.
func dumpGoroutines(b *testing.B, pid int) {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(cmdline), "\x00")
	i := slices.Index(args, "--dir")
	if i < 0 || i+1 >= len(args) {
		return
	}
	logf := filepath.Join(args[i+1], "shim.log")
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second)
	log, _ := os.ReadFile(logf)
	dump := string(log)
	if j := strings.Index(dump, "SIGQUIT"); j >= 0 {
		dump = dump[j:]
	}
	var states, gcs []string
	for _, line := range strings.Split(string(log), "\n") {
		if strings.HasPrefix(line, "gc ") || strings.HasPrefix(line, "scvg") {
			gcs = append(gcs, line) // GODEBUG=gctrace=1
		}
	}
	for _, line := range strings.Split(dump, "\n") {
		if strings.HasPrefix(line, "goroutine ") {
			states = append(states, line)
		}
	}
	b.Logf("shim %d: %d goroutines:\n%s\n%s\n%s", pid, len(states), strings.Join(gcs, "\n"), strings.Join(states, "\n"), dump)
}
