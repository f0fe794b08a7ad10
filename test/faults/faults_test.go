package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// rounds is how many times TestFaults kills the daemon: $CRIB_FAULTS_KILLS
// (`make faults` sets 50, the issue's figure), 4 otherwise, so that `make
// test` stays under a minute and still meets every other fault once.
func rounds(t *testing.T) int { return harness.EnvCount(t, "CRIB_FAULTS_KILLS", 4) }

// workers is how many clients create and remove pods side by side.
const workers = 4

// chaos is one daemon under load and the faults injected into it.
type chaos struct {
	t       *testing.T
	e       *harness.Env
	regHost string
	images  map[string]string // "busybox", "big": references
	cgroup  string            // the test's cgroup parent
	cg      cgroups.Manager
	logDir  string // the pods' log directories, on a filesystem of their own
	procs   string // the cgroup hierarchy whose cgroup.procs the checks read

	// gate is held for reading by each worker call and for writing by the
	// controller while it restarts the daemon or checks: then no call is
	// in flight and the ledger says what the clients were told.
	gate sync.RWMutex

	// dmu guards d and c.
	dmu sync.Mutex
	d   *harness.Daemon
	c   harness.Clients

	// mu guards pods, logsFull and every field of the pods and containers
	// in them.
	mu   sync.Mutex
	pods map[string]*pod // by uid
	// logsFull is set while the log filesystem is full: containers
	// created then may lose lines.
	logsFull bool

	// killInit asks the next StartContainer of a worker to have its
	// container's init killed.
	killInit atomic.Bool

	// The figures of the run.
	daemonKills, shimKills, initKills, pullsOnFullDisk, logsOnFullDisk counter
	shimKilledPods                                                     counter
	checks, podsChecked, ctrsChecked, exitCodes, unknownExits          counter
	execs, rpcErrors, podsRun, ctrsCreated, probes                     counter
	checkedIDs                                                         sync.Map
}

// TestFaults runs 4 workers creating and removing pods with containers
// that print and are exec'd into, and meanwhile kills the daemon (-9) at
// random moments, kills pods' shims, kills a container's init during its
// StartContainer, and fills the disk during an image pull and during log
// writes. After each fault, with the daemon restarted, every pod and
// container the clients were told exists must be listed in its real state
// (check.go), a fresh pod must run (the errors clear), and at the end,
// with everything removed, nothing may be left (the leak inventory) and
// the image store must be whole.
func TestFaults(t *testing.T) {
	n := rounds(t)
	reg := testregistry.Start(t)
	busybox, _ := reg.Push(t, "faults/busybox:1", testregistry.Busybox(t, ""))
	// Two layers of incompressible data, 12 MiB in all: more than a full
	// disk has, little next to the root's filesystem.
	big, _ := reg.Push(t, "faults/big:1", testregistry.Random(t, 2, 6<<20, 15))
	e := harness.NewEnv(t)
	// Fifty daemons' logs at V(4) would bury a failure.
	e.LogLevel = 2
	e.WithNetwork(fmt.Sprintf("10.90.%d.0/24", rand.IntN(200)+20))
	e.WriteConfig("")
	// The root (images, container records and writable layers) and the
	// pods' logs each on a small filesystem the test can fill.
	harness.LoopFS(t, e.Root, 128<<20)
	x := &chaos{t: t, e: e, cgroup: fmt.Sprintf("/crib-faults-%x", rand.Int64()), logDir: filepath.Join(e.Dir, "logs"),
		pods: map[string]*pod{}, procs: procsHierarchy(t)}
	harness.LoopFS(t, x.logDir, 32<<20)
	x.regHost = reg.ListenIn(t, "/run/netns/"+e.Netns)
	x.images = map[string]string{"busybox": strings.Replace(busybox, reg.Host, x.regHost, 1),
		"big": strings.Replace(big, reg.Host, x.regHost, 1)}
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	x.cg = cg
	// Whatever a failed run leaves goes with the test's cgroups. The test
	// makes its parent, as the kubelet makes kubepods, and each pod's.
	t.Cleanup(func() {
		if err := cg.Remove(x.cgroup); err != nil {
			t.Errorf("remove the test's cgroups: %v", err)
		}
	})
	if err := cg.Create(x.cgroup, nil); err != nil {
		t.Fatal(err)
	}
	x.d = e.Start()
	x.c = x.d.Clients()
	if _, err := x.c.Images.PullImage(context.Background(), &criapi.ImageSpec{Image: x.images["busybox"]}, nil, nil); err != nil {
		t.Fatal(err)
	}
	// The first pod makes what the daemon keeps for its life (the bridge,
	// the shims directory): not a leak.
	x.probe(false)
	before := x.steadyInventory()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		w := &worker{x: x, n: i, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
		go func() { defer wg.Done(); w.run(ctx) }()
	}
	// A check that fails the test ends it here: the workers stop first.
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := time.Now()
	for r := 0; r < n && !t.Failed(); r++ {
		x.checkpoint(x.fault(r), r == n-1 || r%4 == 2)
		if t.Failed() {
			break
		}
		x.killDaemon(r)
	}
	cancel()
	wg.Wait()
	elapsed := time.Since(start)
	if t.Failed() {
		return
	}
	x.removeAll()
	x.checkImages(true)
	after := harness.Settle(t, x.scope(), before, 15*time.Second)
	leaks := strings.Count(before.WithoutHostMounts().Diff(after.WithoutHostMounts()), "\n")
	before.Log(t, after)
	before.Compare(t, after, fmt.Sprintf("after %d daemon kills and every pod removed", n))
	x.report(elapsed, leaks)
}

// report logs the run's figures (docs/reliability.md has them).
func (x *chaos) report(elapsed time.Duration, leaks int) {
	distinct := 0
	x.checkedIDs.Range(func(any, any) bool { distinct++; return true })
	x.t.Logf("faults: %d daemon kills survived, %d shim kills (ending %d pods), %d container inits killed during StartContainer, "+
		"%d pulls and %d log writes on a full disk, in %s",
		x.daemonKills.Load(), x.shimKills.Load(), x.shimKilledPods.Load(), x.initKills.Load(), x.pullsOnFullDisk.Load(), x.logsOnFullDisk.Load(), elapsed.Round(time.Second))
	x.t.Logf("faults: %d checks: %d pod and %d container states checked (%d distinct containers), %d exit codes real, %d marked unknown",
		x.checks.Load(), x.podsChecked.Load(), x.ctrsChecked.Load(), distinct, x.exitCodes.Load(), x.unknownExits.Load())
	x.t.Logf("faults: load: %d pods run, %d containers created, %d execs, %d calls failed during faults, %d probe pods; leaks found: %d",
		x.podsRun.Load(), x.ctrsCreated.Load(), x.execs.Load(), x.rpcErrors.Load(), x.probes.Load(), leaks)
}

// clients are the current daemon's.
func (x *chaos) clients() harness.Clients {
	x.dmu.Lock()
	defer x.dmu.Unlock()
	return x.c
}

func (x *chaos) scope() harness.Scope {
	x.dmu.Lock()
	defer x.dmu.Unlock()
	return harness.Scope{Env: x.e, Daemon: x.d, Cgroup: x.cgroup, Registry: x.regHost}
}

// steadyInventory takes inventories until two in a row agree: the
// first pod's shim exits after RemovePodSandbox returns.
func (x *chaos) steadyInventory() harness.Inventory {
	inv := harness.Take(x.t, x.scope())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		again := harness.Take(x.t, x.scope())
		if inv.WithoutHostMounts().Diff(again.WithoutHostMounts()) == "" {
			break
		}
		inv = again
	}
	return inv
}

// restart starts a daemon on the env after the last one died and gives
// the workers its clients.
func (x *chaos) restart() {
	x.t.Helper()
	d := x.e.Start()
	c := d.Clients()
	x.dmu.Lock()
	old := x.c
	x.d, x.c = d, c
	x.dmu.Unlock()
	_ = old.Runtime.Close(context.Background())
	_ = old.Images.Close(context.Background())
}

// killDaemon kills the daemon with SIGKILL at a random moment of the
// workers' calls (and of a pull), and restarts it with the workers held.
func (x *chaos) killDaemon(r int) {
	// Every third kill most likely meets a pull of the big image too.
	pulled := make(chan struct{})
	if r%3 == 0 {
		img := x.clients().Images
		go func() {
			defer close(pulled)
			_, _ = img.PullImage(context.Background(), &criapi.ImageSpec{Image: x.images["big"]}, nil, nil)
		}()
	} else {
		close(pulled)
	}
	time.Sleep(time.Duration(rand.IntN(2500)) * time.Millisecond)
	x.dmu.Lock()
	d := x.d
	x.dmu.Unlock()
	d.Kill()
	<-pulled
	x.gate.Lock()
	defer x.gate.Unlock()
	x.restart()
	x.daemonKills.Add(1)
	x.checkLocked(fmt.Sprintf("daemon kill %d", r+1), false)
}

// checkpoint holds the workers, checks what the daemon lists against what
// the clients were told, and runs a fresh pod (with big, a container made
// from the big image).
func (x *chaos) checkpoint(what string, big bool) {
	x.gate.Lock()
	defer x.gate.Unlock()
	x.checkLocked(what, big)
}

// checkLocked is checkpoint for a controller that holds the gate.
func (x *chaos) checkLocked(what string, big bool) {
	x.check(what)
	x.checkImages(false)
	x.probe(big)
	if x.t.Failed() {
		x.t.Logf("the checks after %s failed", what)
	}
}

// probe runs a pod with a container through its life while the workers
// are held: every call must succeed, whatever faults came before. With
// big, a container is also created from the big image, pulled afresh.
func (x *chaos) probe(big bool) {
	w := &worker{x: x, n: -1, probe: true}
	p := x.newPod(-1)
	x.probes.Add(1)
	if w.runPod(p) != nil {
		return
	}
	c, err := w.createCtr(p, "sleeper", "busybox")
	if err != nil || w.startCtr(c) != nil || w.execSync(c) != nil {
		return
	}
	if big {
		if _, err := x.clients().Images.PullImage(context.Background(), &criapi.ImageSpec{Image: x.images["big"]}, nil, nil); err != nil {
			x.t.Errorf("probe: pull %s: %v", x.images["big"], err)
			return
		}
		if _, err := w.createCtr(p, "data", "big"); err != nil {
			return
		}
	}
	if err := w.teardown(p); err != nil {
		return
	}
	if big {
		if err := x.clients().Images.RemoveImage(context.Background(), &criapi.ImageSpec{Image: x.images["big"]}); err != nil {
			x.t.Errorf("probe: remove image %s: %v", x.images["big"], err)
		}
	}
}

// removeAll stops and removes every pod the daemon lists, as the
// kubelet's garbage collection would: every call must succeed. Then
// nothing may be listed.
func (x *chaos) removeAll() {
	t := x.t
	x.gate.Lock()
	defer x.gate.Unlock()
	ctx := context.Background()
	c := x.clients()
	pods, err := c.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatalf("list pods at the end: %v", err)
	}
	for _, lp := range pods {
		if err := c.Runtime.StopPodSandbox(ctx, lp.Id); err != nil {
			t.Errorf("stop pod %s at the end: %v", lp.Id, err)
		}
		if err := c.Runtime.RemovePodSandbox(ctx, lp.Id); err != nil {
			t.Errorf("remove pod %s at the end: %v", lp.Id, err)
		}
	}
	x.mu.Lock()
	for _, p := range x.pods {
		if !p.removed {
			p.removed = true
			for _, c := range p.ctrs {
				c.removed = true
			}
			if err := x.kubeletCleanup(p); err != nil {
				t.Error(err)
			}
		}
	}
	x.mu.Unlock()
	if pods, err := c.Runtime.ListPodSandbox(ctx, nil); err != nil || len(pods) != 0 {
		t.Errorf("pods listed after every pod was removed: %v, %v", pods, err)
	}
	if ctrs, err := c.Runtime.ListContainers(ctx, nil); err != nil || len(ctrs) != 0 {
		t.Errorf("containers listed after every pod was removed: %v, %v", ctrs, err)
	}
}
