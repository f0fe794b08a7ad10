package cri

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
	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/image"
	"github.com/crib-runtime/crib/runtime/shimapi"
	"github.com/crib-runtime/crib/sandbox"
)

// raceShim is a pod's shim in memory: what runtime.Manager calls.
type raceShim struct {
	mu     sync.Mutex
	states map[string]shimapi.Status
	gone   bool // shut down
	// waitFails is how many Waits still fail as a lost connection does
	// (the shim restarted); exitAtStart makes a started container exit
	// at once.
	waitFails   int
	exitAtStart bool
}

func (f *raceShim) set(id string, want, to shimapi.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[id]
	switch {
	case !ok:
		return fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	case s != want:
		return fmt.Errorf("container %s is %s: %w", id, s, errdefs.ErrFailedPrecondition)
	}
	f.states[id] = to
	return nil
}

func (f *raceShim) get(id string) (*shimapi.ContainerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return &shimapi.ContainerState{Id: id, Status: s}, nil
}

func (f *raceShim) Create(_ context.Context, r *shimapi.CreateRequest) (*shimapi.ContainerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.states[r.Id]; ok {
		return nil, errdefs.ErrAlreadyExists
	}
	f.states[r.Id] = shimapi.Status_CREATED
	return &shimapi.ContainerState{Id: r.Id, Status: shimapi.Status_CREATED}, nil
}

func (f *raceShim) Start(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	f.mu.Lock()
	to := shimapi.Status_RUNNING
	if f.exitAtStart {
		to = shimapi.Status_EXITED
	}
	f.mu.Unlock()
	return nil, f.set(r.Id, shimapi.Status_CREATED, to)
}

func (f *raceShim) Kill(_ context.Context, r *shimapi.KillRequest) (*shimapi.Empty, error) {
	if err := f.set(r.Id, shimapi.Status_RUNNING, shimapi.Status_EXITED); err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) {
		return nil, err
	}
	return &shimapi.Empty{}, nil
}

func (f *raceShim) Wait(ctx context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	f.mu.Lock()
	if f.waitFails > 0 {
		f.waitFails--
		f.mu.Unlock()
		return nil, fmt.Errorf("shim connection: %w", errdefs.ErrUnavailable)
	}
	f.mu.Unlock()
	for {
		s, err := f.get(r.Id)
		if err != nil || s.Status == shimapi.Status_EXITED {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

func (f *raceShim) State(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	yield()
	return f.get(r.Id)
}

func (f *raceShim) Delete(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.Empty, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.states[r.Id] == shimapi.Status_RUNNING {
		return nil, errdefs.ErrFailedPrecondition
	}
	delete(f.states, r.Id)
	return &shimapi.Empty{}, nil
}

func (f *raceShim) ReopenLog(context.Context, *shimapi.ContainerRequest) (*shimapi.Empty, error) {
	return &shimapi.Empty{}, nil
}

func (f *raceShim) ExecSync(context.Context, *shimapi.ExecSyncRequest) (*shimapi.ExecSyncResponse, error) {
	return &shimapi.ExecSyncResponse{}, nil
}

func (f *raceShim) Update(_ context.Context, r *shimapi.UpdateRequest) (*shimapi.Empty, error) {
	_, err := f.get(r.Id)
	return &shimapi.Empty{}, err
}

func (f *raceShim) List(context.Context, *shimapi.Empty) (*shimapi.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &shimapi.ListResponse{}
	for id, s := range f.states {
		resp.Containers = append(resp.Containers, &shimapi.ContainerState{Id: id, Status: s})
	}
	return resp, nil
}

// raceWorld is a Server over in-memory pods and shims and a real
// runtime.Manager.
type raceWorld struct {
	mu    sync.Mutex
	pods  map[string]*sandbox.Pod
	shims map[string]*raceShim
	// ran receives each pod id RunPodSandbox chose, once its record exists.
	ran chan string
}

func (w *raceWorld) Shim(_ context.Context, podID string) (runtime.Shim, error) {
	w.mu.Lock()
	s, ok := w.shims[podID]
	w.mu.Unlock()
	if ok {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.gone {
			return s, nil
		}
	}
	return nil, fmt.Errorf("shim of pod %s: %w", podID, errdefs.ErrNotFound)
}

// Gone: the pod's shim was shut down.
func (w *raceWorld) Gone(ctx context.Context, podID string) bool {
	_, err := w.Shim(ctx, podID)
	return errors.Is(err, errdefs.ErrNotFound)
}

// Shutdown refuses while a container runs, as the shim does.
func (w *raceWorld) Shutdown(_ context.Context, podID string) error {
	w.mu.Lock()
	s, ok := w.shims[podID]
	w.mu.Unlock()
	if !ok {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, st := range s.states {
		if st != shimapi.Status_EXITED {
			return fmt.Errorf("shut down shim of pod %s: container %s is %s: %w", podID, id, st, errdefs.ErrFailedPrecondition)
		}
	}
	s.gone = true
	return nil
}

// yield widens the windows a real runtime has (CNI, shim calls).
func yield() { time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond) }

func (w *raceWorld) Run(_ context.Context, c sandbox.Config) (*sandbox.Pod, error) {
	p := &sandbox.Pod{ID: c.ID, Name: c.Name, Namespace: c.Namespace, UID: c.UID, State: sandbox.StateCreating, CgroupParent: c.CgroupParent}
	w.mu.Lock()
	w.pods[p.ID] = p
	w.shims[p.ID] = &raceShim{states: map[string]shimapi.Status{}}
	w.mu.Unlock()
	if w.ran != nil {
		w.ran <- p.ID
	}
	yield()
	w.mu.Lock()
	defer w.mu.Unlock()
	if q, ok := w.pods[p.ID]; ok && q.State == sandbox.StateCreating {
		q.State = sandbox.StateReady
	}
	return p, nil
}

func (w *raceWorld) Stop(_ context.Context, id string) error {
	yield()
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.pods[id]
	if !ok {
		return errdefs.ErrNotFound
	}
	p.State = sandbox.StateNotReady
	return nil
}

func (w *raceWorld) Remove(_ context.Context, id string) error {
	yield()
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pods, id)
	return nil
}

func (w *raceWorld) UpdateResources(context.Context, string, *specs.LinuxResources, *specs.LinuxResources) error {
	return nil
}

func (w *raceWorld) Get(id string) (*sandbox.Pod, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.pods[id]; ok {
		q := *p
		return &q, nil
	}
	return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrNotFound)
}

func (w *raceWorld) List(sandbox.Filter) []*sandbox.Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*sandbox.Pod
	for _, p := range w.pods {
		q := *p
		out = append(out, &q)
	}
	return out
}

// raceImages has one image, "img", with nothing in it.
type raceImages struct{}

func (raceImages) Pull(context.Context, string, image.Auth) (image.Image, error) {
	return image.Image{}, errdefs.ErrNotImplemented
}
func (raceImages) Get(string) (image.Image, error) {
	return image.Image{ID: "sha256:" + fmt.Sprint(1)}, nil
}
func (raceImages) List() []image.Image { return nil }
func (raceImages) Remove(string) error { return nil }
func (raceImages) Usage() image.Usage  { return image.Usage{} }
func (raceImages) HoldLayers(string) ([]string, func(), error) {
	return []string{"/nonexistent/layer"}, func() {}, nil
}
func (raceImages) Collect() {}
func (raceImages) RunConfig(string) (image.RunConfig, error) {
	return image.RunConfig{Cmd: []string{"true"}}, nil
}
func (raceImages) ConfigFile(string) (*v1.ConfigFile, error)      { return &v1.ConfigFile{}, nil }
func (raceImages) ReadFile(string, string, int64) ([]byte, error) { return nil, errdefs.ErrNotFound }
func (raceImages) CheckDir(string, string) error                  { return nil }

type noClasses struct{}

func (noClasses) Check(string) (string, error, error) { return "", nil, nil }

func (noClasses) Resolve(map[string]string, map[string]string, string) (string, error, error) {
	return "", nil, nil
}

func newRaceWorld(t *testing.T) (*Server, *raceWorld, *runtime.Manager) {
	w := &raceWorld{pods: map[string]*sandbox.Pod{}, shims: map[string]*raceShim{}}
	m, err := runtime.Open(t.TempDir(), w)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{images: raceImages{}, containers: m, pods: podInfo{w}, sandboxes: w, shims: w, classes: noClasses{},
		base: t.Context(), opts: Options{CgroupDriver: "cgroupfs", CgroupRoot: "/crib-race"}}
	return s, w, m
}

var racePodConfig = &criapi.PodSandboxConfig{Metadata: &criapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}}

func raceContainer(name string) *criapi.ContainerConfig {
	return &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: "img"}}
}

// podRPCs are the RPCs that race on one pod: pod is the pod, ctr a
// container created in it before the round (for StartContainer).
var podRPCs = []struct {
	name string
	call func(ctx context.Context, s *Server, pod, ctr string, round int) error
}{
	{"run", nil}, // the round runs the pod with it
	{"stop", func(ctx context.Context, s *Server, pod, _ string, _ int) error {
		_, err := s.StopPodSandbox(ctx, &criapi.StopPodSandboxRequest{PodSandboxId: pod})
		return err
	}},
	{"remove", func(ctx context.Context, s *Server, pod, _ string, _ int) error {
		_, err := s.RemovePodSandbox(ctx, &criapi.RemovePodSandboxRequest{PodSandboxId: pod})
		return err
	}},
	{"create", func(ctx context.Context, s *Server, pod, _ string, round int) error {
		_, err := s.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: pod, Config: raceContainer(fmt.Sprintf("r%d-%d", round, rand.Int())),
			SandboxConfig: racePodConfig})
		return err
	}},
	{"start", func(ctx context.Context, s *Server, _, ctr string, _ int) error {
		_, err := s.StartContainer(ctx, &criapi.StartContainerRequest{ContainerId: ctr})
		return err
	}},
}

func podRaceRounds() int {
	if n, err := strconv.Atoi(os.Getenv("CRIB_RACE_ROUNDS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 20
	}
	return 200
}

// TestPodRPCRaces races every pair of pod RPCs and the container RPCs that
// need a ready pod, on one pod, and checks after each round: no record of
// a removed pod's container is left, no container runs in a stopped pod,
// the RPCs fail only with the CRI's answers, and the pod can still be
// stopped and removed, after which nothing of it is left.
func TestPodRPCRaces(t *testing.T) {
	rounds := podRaceRounds()
	for _, a := range podRPCs {
		for _, b := range podRPCs {
			if a.name == "run" && b.name == "run" {
				continue // two runs make two pods
			}
			t.Run(a.name+"+"+b.name, func(t *testing.T) {
				t.Parallel()
				s, w, m := newRaceWorld(t)
				ctx := t.Context()
				for i := range rounds {
					racePodRound(t, ctx, s, w, m, i, a.name, b.name)
				}
				if n := s.podLocks.held(); n != 0 {
					t.Fatalf("%d pod lock entries outlive their RPCs", n)
				}
			})
		}
	}
}

func racePodRound(t *testing.T, ctx context.Context, s *Server, w *raceWorld, m *runtime.Manager, round int, a, b string) {
	t.Helper()
	calls := map[string]func(ctx context.Context, s *Server, pod, ctr string, round int) error{}
	for _, r := range podRPCs {
		calls[r.name] = r.call
	}
	var pod, ctr string
	errs := make([]error, 2)
	var wg sync.WaitGroup
	if a == "run" || b == "run" {
		w.ran = make(chan string, 1)
		other, j := b, 1
		if b == "run" {
			other, j = a, 0
		}
		wg.Go(func() {
			resp, err := s.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{Config: racePodConfig})
			errs[1-j] = err
			_ = resp
		})
		pod = <-w.ran
		wg.Go(func() {
			if other == "start" {
				return // no container can exist before the pod: nothing to start
			}
			yield()
			errs[j] = calls[other](ctx, s, pod, "", round)
		})
		wg.Wait()
		w.ran = nil
	} else {
		resp, err := s.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{Config: racePodConfig})
		if err != nil {
			t.Fatal(err)
		}
		pod = resp.PodSandboxId
		cr, err := s.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: pod, Config: raceContainer("first"), SandboxConfig: racePodConfig})
		if err != nil {
			t.Fatal(err)
		}
		ctr = cr.ContainerId
		for j, name := range []string{a, b} {
			wg.Go(func() {
				if rand.IntN(2) == 0 {
					yield()
				}
				errs[j] = calls[name](ctx, s, pod, ctr, round)
			})
		}
		wg.Wait()
	}
	for j, err := range errs {
		if err != nil && !errors.Is(err, errdefs.ErrNotFound) && !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("round %d: %s: %v", round, []string{a, b}[j], err)
		}
	}
	p, perr := w.Get(pod)
	w.mu.Lock()
	sh := w.shims[pod]
	w.mu.Unlock()
	if perr != nil && len(m.InSandbox(pod)) != 0 {
		t.Fatalf("round %d, %s+%s: pod removed, its containers %v are still recorded", round, a, b, m.InSandbox(pod))
	}
	if perr == nil && p.State == sandbox.StateNotReady {
		sh.mu.Lock()
		for id, st := range sh.states {
			if st == shimapi.Status_RUNNING {
				sh.mu.Unlock()
				t.Fatalf("round %d, %s+%s: container %s runs in stopped pod", round, a, b, id)
			}
		}
		sh.mu.Unlock()
	}
	if _, err := s.StopPodSandbox(ctx, &criapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("round %d, %s+%s: stop after: %v", round, a, b, err)
	}
	if _, err := s.RemovePodSandbox(ctx, &criapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatalf("round %d, %s+%s: remove after: %v", round, a, b, err)
	}
	if ids := m.InSandbox(pod); len(ids) != 0 {
		t.Fatalf("round %d, %s+%s: after RemovePodSandbox the pod's containers %v are still recorded", round, a, b, ids)
	}
}

// TestPodLockWaitEndsWithContext: a waiter whose caller gives up leaves,
// and leaves no entry behind.
func TestPodLockWaitEndsWithContext(t *testing.T) {
	var l podLocks
	unlock, err := l.lock(t.Context(), "p", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.lock(ctx, "p", true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("alone while shared: %v, want it to wait", err)
	}
	shared, err := l.lock(t.Context(), "p", false)
	if err != nil {
		t.Fatalf("a second share: %v", err)
	}
	unlock()
	shared()
	if n := l.held(); n != 0 {
		t.Fatalf("%d entries after every holder left", n)
	}
}

// BenchmarkPodLock is what the pod lock adds to each pod RPC and to
// CreateContainer and StartContainer when nothing else holds the pod.
func BenchmarkPodLock(b *testing.B) {
	var l podLocks
	ctx := context.Background()
	for b.Loop() {
		unlock, err := l.lock(ctx, "0123456789abcdef", false)
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}
