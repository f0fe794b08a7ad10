package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// settings are the run's size: $CRIB_SOAK_DURATION and $CRIB_SOAK_PODS
// (`make soak`: an hour, 50 pods); a short run of a few pods otherwise, so
// that `make test` keeps the test working.
func settings(t *testing.T) (time.Duration, int) {
	d := 40 * time.Second
	if s := os.Getenv("CRIB_SOAK_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 10*time.Second {
			t.Fatalf("CRIB_SOAK_DURATION=%q: want a duration of at least 10s", s)
		}
	}
	pods := harness.EnvCount(t, "CRIB_SOAK_PODS", 8)
	if pods < 5 {
		t.Fatalf("CRIB_SOAK_PODS=%d: want at least 5", pods)
	}
	return d, pods
}

// workers churn the pods, as the load has it.
const workers = 4

// TestSoak keeps a set of pods running while workers churn them: each turn
// replaces a random pod (stop, remove, run a new one whose container
// writes a log line a second), runs an ExecSync in another and reads a
// container's status, then pauses a moment. A fifth of the pods (the
// steady ones) are never replaced; their shims are what "a shim over time"
// means. The daemon's memory, fds and goroutines and the steady shims'
// memory and fds are sampled throughout and must stay flat once warm (see
// judge); at the end every pod goes and nothing of crib's may be left.
func TestSoak(t *testing.T) {
	duration, npods := settings(t)
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "soak/busybox:1", testregistry.Busybox(t, ""))
	e := harness.NewEnv(t)
	e.LogLevel = 1 // an hour of V(4) lines would be the test's own leak
	e.WithNetwork(fmt.Sprintf("10.90.%d.0/24", rand.IntN(200)+20))
	// A shim process of its own per pod: the steady pods' shims are what
	// is watched over time, and a process shared with churned pods moves
	// with their number. (The leak test's cycles all go to the one
	// process kept between them, which checks its fds in each cycle.)
	e.WriteConfig("[shim]\npods_per_shim = 1\n")
	host := reg.ListenIn(t, "/run/netns/"+e.Netns)
	ref = strings.Replace(ref, reg.Host, host, 1)
	d := e.Start()
	c := d.Clients()
	ctx := context.Background()
	if _, err := c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}
	l := &load{c: c, image: ref, logs: filepath.Join(e.Dir, "logs")}
	steady := max(1, npods/5)
	slots := make([]*pod, npods)
	for i := range slots {
		p, err := l.run(ctx, i)
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		slots[i] = p
	}
	t.Cleanup(func() {
		for _, p := range slots {
			if p != nil {
				_ = l.remove(context.Background(), p)
			}
		}
	})
	// The steady pods' shim processes, each once: one may serve several
	// pods, churned ones among them ([shim] pods_per_shim).
	var shims []int
	for _, p := range slots[:steady] {
		if pid := harness.ShimPid(t, p.podID); !slices.Contains(shims, pid) {
			shims = append(shims, pid)
		}
	}

	interval := max(duration/60, time.Second)
	var samples []sample
	var turns, execs atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	var locks = make([]sync.Mutex, npods)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(200+rng.IntN(300)) * time.Millisecond):
				}
				if err := l.turn(ctx, rng, slots, locks, steady, &execs); err != nil {
					errs <- err
					return
				}
				turns.Add(1)
			}
		}()
	}
	start := time.Now()
	for time.Since(start) < duration && len(errs) == 0 {
		s, err := takeSample(d, shims)
		if err != nil {
			t.Error(err)
			break
		}
		s.at = time.Since(start)
		samples = append(samples, s)
		select {
		case <-time.After(interval):
		case err := <-errs:
			errs <- err
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%s, %d pods (%d steady), %d workers: %d turns (pods replaced), %d execs", duration, npods, steady, workers, turns.Load(), execs.Load())
	report(t, samples)
	if t.Failed() {
		return
	}
	judge(t, samples, len(shims))

	// Everything goes; then nothing of crib's is left but the daemon.
	for i, p := range slots {
		if err := l.remove(ctx, p); err != nil {
			t.Errorf("remove pod %d: %v", i, err)
		}
		slots[i] = nil
	}
	waitGone(t, e.Dir, d.Pid())
}

// load runs the soak's pods.
type load struct {
	c     harness.Clients
	image string
	logs  string
	n     atomic.Int64 // pods made, for unique names
}

type pod struct {
	podID, id, logDir string
	cfg               *criapi.PodSandboxConfig
}

// run starts a pod whose container logs a line a second.
func (l *load) run(ctx context.Context, slot int) (*pod, error) {
	n := l.n.Add(1)
	uid := fmt.Sprintf("soak-%d-%x", n, rand.Int64())
	p := &pod{logDir: filepath.Join(l.logs, uid)}
	p.cfg = &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: fmt.Sprintf("soak-%d", slot), Namespace: "soak", Uid: uid},
		Hostname:     "soak",
		LogDirectory: p.logDir,
	}
	var err error
	if p.podID, err = l.c.Runtime.RunPodSandbox(ctx, p.cfg, ""); err != nil {
		return nil, fmt.Errorf("run pod: %w", err)
	}
	p.id, err = l.c.Runtime.CreateContainer(ctx, p.podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "logger"},
		Image:    &criapi.ImageSpec{Image: l.image},
		Command:  []string{"sh", "-c", `trap "exit 0" TERM; i=0; while true; do echo "line $i"; i=$((i+1)); sleep 1; done`},
		LogPath:  "logger.log",
	}, p.cfg)
	if err == nil {
		err = l.c.Runtime.StartContainer(ctx, p.id)
	}
	if err != nil {
		_ = l.remove(ctx, p)
		return nil, fmt.Errorf("container: %w", err)
	}
	return p, nil
}

// remove stops and removes a pod, and its log directory as the kubelet
// would.
func (l *load) remove(ctx context.Context, p *pod) error {
	err := errors.Join(l.c.Runtime.StopPodSandbox(ctx, p.podID), l.c.Runtime.RemovePodSandbox(ctx, p.podID))
	return errors.Join(err, os.RemoveAll(p.logDir))
}

// turn replaces one churning pod and execs into another.
func (l *load) turn(ctx context.Context, rng *rand.Rand, slots []*pod, locks []sync.Mutex, steady int, execs *atomic.Int64) error {
	i := steady + rng.IntN(len(slots)-steady)
	locks[i].Lock()
	old := slots[i]
	if err := l.remove(ctx, old); err != nil {
		locks[i].Unlock()
		return fmt.Errorf("replace pod %d: %w", i, err)
	}
	p, err := l.run(ctx, i)
	slots[i] = p
	locks[i].Unlock()
	if err != nil {
		return fmt.Errorf("replace pod %d: %w", i, err)
	}
	j := rng.IntN(len(slots))
	locks[j].Lock()
	defer locks[j].Unlock()
	target := slots[j]
	want := strconv.Itoa(rng.IntN(1000))
	resp, err := l.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: target.id, Cmd: []string{"echo", want}, Timeout: 10})
	if err != nil || string(resp.Stdout) != want+"\n" || resp.ExitCode != 0 {
		return fmt.Errorf("exec in pod %d: %+v, %w", j, resp, err)
	}
	execs.Add(1)
	st, err := l.c.Runtime.ContainerStatus(ctx, target.id, false)
	if err != nil || st.GetStatus().GetState() != criapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("status of pod %d's container: %v, %w", j, st.GetStatus().GetState(), err)
	}
	return nil
}

// waitGone waits until no process but the daemon and the one shim
// process it keeps for the next pod, started from the env dir (shims,
// pause processes, containers' inits), is left, and fails naming them if
// more stay.
func waitGone(t *testing.T, dir string, daemon int) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		left = left[:0]
		kept := 0
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			if pid, err := strconv.Atoi(p.Name()); err != nil || pid == daemon {
				continue
			}
			cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
			exe, _ := os.Readlink("/proc/" + p.Name() + "/exe")
			if strings.Contains(string(cmd), dir) || strings.Contains(exe, dir) {
				line := strings.ReplaceAll(string(cmd), "\x00", " ")
				if strings.HasPrefix(line, "crib-shim shim ") {
					kept++
				}
				left = append(left, p.Name()+" "+line)
			}
		}
		if len(left) == 0 || len(left) == 1 && kept == 1 {
			return
		}
	}
	t.Errorf("processes left after every pod was removed:\n%s", strings.Join(left, "\n"))
}
