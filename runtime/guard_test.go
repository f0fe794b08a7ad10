package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// once runs f in a goroutine the first time the returned hook is called,
// and waits for it, but at most 300 ms: with the guard, f waits for the
// operation the hook runs in, which cannot end while the hook waits.
func once(f func()) func() {
	var o sync.Once
	return func() {
		o.Do(func() {
			done := make(chan struct{})
			go func() { f(); close(done) }()
			select {
			case <-done:
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}

// TestRemoveDuringStartLeavesNothingInTheShim: a Remove that lands while
// Start is handing the container to the shim used to find nothing to
// delete there, drop the record, and let Start run the container: the
// shim then held a running container the daemon did not know, its
// Shutdown refused for ever, and so did RemovePodSandbox.
func TestRemoveDuringStartLeavesNothingInTheShim(t *testing.T) {
	m, shim, _ := newWorld(t)
	ctx := context.Background()
	c := newContainer("pod", "app")
	create(t, m, c)
	removed := make(chan error, 1)
	shim.beforeCreate = once(func() { _, err := m.Remove(ctx, c.ID); removed <- err })
	_, startErr := m.Start(ctx, c.ID)
	if err := <-removed; err != nil {
		t.Fatalf("remove: %v", err)
	}
	m.Drain()
	if _, err := m.get(c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("record after remove: %v", err)
	}
	if s, err := shim.state(c.ID); err == nil {
		t.Fatalf("start = %v; the shim still holds removed container %s (%v)", startErr, c.ID, s.Status)
	}
}

// TestUpdateDuringStartIsKept: an UpdateContainerResources between Start's
// read of the record and the shim's Create used to find the container
// unknown to the shim, write the record only, and be lost: Start handed
// over the spec it had read before.
func TestUpdateDuringStartIsKept(t *testing.T) {
	m, shim, _ := newWorld(t)
	ctx := context.Background()
	c := newContainer("pod", "app")
	create(t, m, c)
	var limit int64 = 7
	updated := make(chan error, 1)
	shim.beforeCreate = once(func() {
		updated <- m.UpdateResources(ctx, c.ID, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}})
	})
	if _, err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := <-updated; err != nil {
		t.Fatalf("update: %v", err)
	}
	shim.mu.Lock()
	got := shim.limits[c.ID]
	shim.mu.Unlock()
	if got != limit {
		t.Fatalf("the running container's pids limit is %d; the update to %d was lost", got, limit)
	}
}

// TestGuardTransitions checks the table's answers that do not wait.
func TestGuardTransitions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		phase Phase
		o     op
		want  error // nil: proceeds
	}{
		{PhaseCreated, opStart, nil},
		{PhaseRunning, opStart, errdefs.ErrFailedPrecondition},
		{PhaseRemoved, opStart, errdefs.ErrNotFound},
		{PhaseRemoved, opStop, errdefs.ErrNotFound},
		{PhaseRemoved, opRemove, errdefs.ErrNotFound},
		{PhaseRemoved, opUpdate, errdefs.ErrNotFound},
		{PhaseCreated, opStop, nil},
		{PhaseRunning, opRemove, nil},
		{PhaseRunning, opUpdate, nil},
	} {
		g := newGuard("c", tc.phase)
		done, err := g.acquire(ctx, tc.o)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s in %s: %v, want %v", tc.o, tc.phase, err, tc.want)
		}
		if done != nil {
			done(false)
			if g.Phase() != tc.phase {
				t.Errorf("%s in %s, failed: back to %s", tc.o, tc.phase, g.Phase())
			}
		}
	}
	// Stops share; a Remove waits for the last.
	g := newGuard("c", PhaseRunning)
	s1, _ := g.acquire(ctx, opStop)
	s2, err := g.acquire(ctx, opStop)
	if err != nil {
		t.Fatalf("second stop: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short, opRemove); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("remove during stops: %v, want it to wait", err)
	}
	s1(true)
	if g.Phase() != PhaseStopping {
		t.Fatalf("one stop left: %s", g.Phase())
	}
	s2(true)
	r, err := g.acquire(ctx, opRemove)
	if err != nil {
		t.Fatal(err)
	}
	r(true)
	if g.Phase() != PhaseRemoved {
		t.Fatalf("after remove: %s", g.Phase())
	}
}

// raceRounds is how many rounds each pair of RPCs races: CRIB_RACE_ROUNDS,
// else 200 (20 with -short).
func raceRounds(t *testing.T) int {
	if n, err := strconv.Atoi(os.Getenv("CRIB_RACE_ROUNDS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 20
	}
	return 200
}

// containerRPCs are the Manager calls behind the container RPCs.
var containerRPCs = []struct {
	name string
	call func(ctx context.Context, m *Manager, id string, limit int64) error
}{
	{"start", func(ctx context.Context, m *Manager, id string, _ int64) error {
		_, err := m.Start(ctx, id)
		return err
	}},
	{"stop", func(ctx context.Context, m *Manager, id string, _ int64) error {
		return m.Stop(ctx, id, time.Millisecond)
	}},
	{"remove", func(ctx context.Context, m *Manager, id string, _ int64) error {
		_, err := m.Remove(ctx, id)
		return err
	}},
	{"update", func(ctx context.Context, m *Manager, id string, limit int64) error {
		return m.UpdateResources(ctx, id, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}})
	}},
	{"status", func(ctx context.Context, m *Manager, id string, _ int64) error {
		_, err := m.Status(ctx, id)
		return err
	}},
	{"execsync", func(ctx context.Context, m *Manager, id string, _ int64) error {
		_, err := m.ExecSync(ctx, id, []byte("{}"), time.Second)
		return err
	}},
	{"reopenlog", func(ctx context.Context, m *Manager, id string, _ int64) error { return m.ReopenLog(ctx, id) }},
}

// TestContainerRPCRaces races every pair of container RPCs on one
// container, created or already running, and checks after each round what
// must hold whatever the order: a container without a record is unknown
// to the shim, an update that succeeded after a start that succeeded is
// what the container runs with, no RPC fails with anything but the CRI's
// answers, and the container can still be removed, after which the shim
// holds nothing and a restarted manager finds no record.
func TestContainerRPCRaces(t *testing.T) {
	rounds := raceRounds(t)
	ctx := context.Background()
	for _, a := range containerRPCs {
		for _, b := range containerRPCs {
			t.Run(a.name+"+"+b.name, func(t *testing.T) {
				t.Parallel()
				m, shim, root := newWorld(t)
				for i := range rounds {
					c := newContainer("pod", fmt.Sprintf("c%d", i))
					create(t, m, c)
					started := i%2 == 1
					if started {
						if _, err := m.Start(ctx, c.ID); err != nil {
							t.Fatal(err)
						}
					}
					var wg sync.WaitGroup
					errs := make([]error, 2)
					var limit int64 = int64(i + 1)
					for j, rpc := range []func(context.Context, *Manager, string, int64) error{a.call, b.call} {
						wg.Go(func() {
							if rand.IntN(2) == 0 {
								time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
							}
							errs[j] = rpc(ctx, m, c.ID, limit)
						})
					}
					wg.Wait()
					for j, err := range errs {
						if err != nil && !errors.Is(err, errdefs.ErrNotFound) && !errors.Is(err, errdefs.ErrFailedPrecondition) {
							t.Fatalf("round %d: %s: %v", i, []string{a.name, b.name}[j], err)
						}
					}
					checkRound(t, m, shim, c.ID, i, a.name, b.name, errs, limit)
					if _, err := m.Remove(ctx, c.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
						t.Fatalf("round %d: remove after %s+%s: %v", i, a.name, b.name, err)
					}
					if _, err := shim.state(c.ID); err == nil {
						t.Fatalf("round %d: the shim keeps %s after its removal", i, c.ID)
					}
				}
				m.Drain()
				again, err := Open(root, shims{"pod": shim})
				if err != nil {
					t.Fatal(err)
				}
				if n := len(again.InSandbox("pod")); n != 0 {
					t.Fatalf("a restarted manager finds %d removed containers", n)
				}
				if resp, _ := shim.List(ctx, nil); len(resp.Containers) != 0 {
					t.Fatalf("the shim still holds %d containers: its Shutdown would refuse", len(resp.Containers))
				}
			})
		}
	}
}

// checkRound checks one round's outcome (see TestContainerRPCRaces).
func checkRound(t *testing.T, m *Manager, shim *fakeShim, id string, round int, a, b string, errs []error, limit int64) {
	t.Helper()
	_, recErr := m.get(id)
	s, shimErr := shim.state(id)
	if recErr != nil && shimErr == nil {
		t.Fatalf("round %d, %s+%s: the shim holds %s (%s) but the daemon has no record", round, a, b, id, s.Status)
	}
	ok := map[string]bool{}
	for j, name := range []string{a, b} {
		ok[name] = ok[name] || errs[j] == nil
	}
	if ok["update"] && shimErr == nil {
		shim.mu.Lock()
		got := shim.limits[id]
		shim.mu.Unlock()
		if got != limit {
			t.Fatalf("round %d, %s+%s: the update to %d succeeded, the container runs with %d", round, a, b, limit, got)
		}
	}
	if recErr == nil && (a == "remove" || b == "remove") && ok["remove"] {
		t.Fatalf("round %d, %s+%s: remove succeeded and the record is still there", round, a, b)
	}
	if shimErr == nil && s.Status == shimapi.Status_RUNNING && ok["stop"] && a != "start" && b != "start" {
		t.Fatalf("round %d, %s+%s: stopped and still running", round, a, b)
	}
}

// fakeCgroups records what is killed and removed.
type fakeCgroups struct {
	mu            sync.Mutex
	killed, freed []string
}

func (f *fakeCgroups) Kill(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed = append(f.killed, p)
	return nil
}

func (f *fakeCgroups) Remove(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.freed = append(f.freed, p)
	return nil
}

// TestShimGoneStopsThroughCgroup: a container whose shim is gone (killed)
// may still run, reparented to init: Stop kills its cgroup and Remove
// removes it, instead of taking "no shim" for "no process".
func TestShimGoneStopsThroughCgroup(t *testing.T) {
	ctx := context.Background()
	m, cg, c := shimGoneWorld(t)
	if err := m.Stop(ctx, c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	if len(cg.killed) != 1 || cg.killed[0] != c.Cgroup || len(cg.freed) != 1 || cg.freed[0] != c.Cgroup {
		t.Fatalf("killed %v, removed %v; want %s each", cg.killed, cg.freed, c.Cgroup)
	}
}

// shimGoneWorld is a manager whose pod "pod" has no shim (killed), with a
// recorded container of that pod in its own cgroup.
func shimGoneWorld(t *testing.T) (*Manager, *fakeCgroups, Container) {
	t.Helper()
	return cgroupWorld(t, shims{}) // no shim serves "pod"
}

// cgroupWorld is a manager over these shims, with fake cgroups and a
// recorded container of pod "pod" in its own cgroup.
func cgroupWorld(t *testing.T, all shims) (*Manager, *fakeCgroups, Container) {
	t.Helper()
	m, err := Open(t.TempDir(), all)
	if err != nil {
		t.Fatal(err)
	}
	cg := &fakeCgroups{}
	m.Cgroups = cg
	c := newContainer("pod", "app")
	c.Cgroup = "/kubepods/podu1/" + c.ID
	create(t, m, c)
	return m, cg, c
}

// TestShimGoneForeignCgroupRefused: a record whose cgroup is not the
// container's own (a damaged one naming its pod's parent) never gets that
// cgroup killed.
func TestShimGoneForeignCgroupRefused(t *testing.T) {
	m, err := Open(t.TempDir(), shims{})
	if err != nil {
		t.Fatal(err)
	}
	cg := &fakeCgroups{}
	m.Cgroups = cg
	c := newContainer("pod", "app")
	c.Cgroup = "/kubepods/podu1"
	create(t, m, c)
	if err := m.Stop(context.Background(), c.ID, time.Second); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Stop = %v, want FailedPrecondition", err)
	}
	if len(cg.killed) != 0 {
		t.Fatalf("killed %v", cg.killed)
	}
}

// BenchmarkGuard is what the guard adds to each Start, Stop, update and
// Remove when nothing else holds the container.
func BenchmarkGuard(b *testing.B) {
	g := newGuard("c", PhaseRunning)
	ctx := context.Background()
	for b.Loop() {
		done, err := g.acquire(ctx, opStop)
		if err != nil {
			b.Fatal(err)
		}
		done(true)
	}
}
