package nri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
)

// fakeRuntime is crib as NRI sees it: a few pods and containers, and the
// resource updates applied to them.
type fakeRuntime struct {
	mu      sync.Mutex
	pods    []Pod
	ctrs    []Container
	updated map[string]*specs.LinuxResources
	evicted []string
}

func (f *fakeRuntime) Evict(_ context.Context, id, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evicted = append(f.evicted, id+": "+reason)
	return nil
}

func (f *fakeRuntime) evictions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.evicted)
}

func (f *fakeRuntime) List(context.Context) ([]Pod, []Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pods), slices.Clone(f.ctrs), nil
}

func (f *fakeRuntime) Resources(_ context.Context, id string) (*specs.LinuxResources, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.ctrs {
		if c.ID == id {
			return c.Spec.Linux.Resources, c.Status == StatusCreated || c.Status == StatusRunning, nil
		}
	}
	return nil, false, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
}

func (f *fakeRuntime) UpdateResources(_ context.Context, id string, r *specs.LinuxResources) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.updated == nil {
		f.updated = map[string]*specs.LinuxResources{}
	}
	f.updated[id] = r
	return nil
}

// testPlugin records the events it gets and answers CreateContainer with
// adjust.
type testPlugin struct {
	mu      sync.Mutex
	events  []string
	synced  []string
	adjust  *api.ContainerAdjustment
	failRun bool
}

func (p *testPlugin) record(ev, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev+" "+id)
}

func (p *testPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *testPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range pods {
		p.synced = append(p.synced, "pod "+x.GetId())
	}
	for _, c := range ctrs {
		p.synced = append(p.synced, "container "+c.GetId())
	}
	return nil, nil
}

func (p *testPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod.GetId())
	if p.failRun {
		return errors.New("no pods today")
	}
	return nil
}

func (p *testPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod.GetId())
	return nil
}

func (p *testPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", c.GetId()+"/"+c.GetName())
	return p.adjust, nil, nil
}

func (p *testPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", c.GetId())
	return nil
}

func (p *testPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", c.GetId())
	return nil, nil
}

func (p *testPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", c.GetId())
	return nil
}

// start runs NRI on a socket in a temp dir with rt, connects p to it and
// waits until it is synchronised.
func start(t *testing.T, rt Runtime, p *testPlugin, opts ...stub.Option) (*NRI, stub.Stub) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "nri.sock")
	n, err := New(Config{SocketPath: sock, PluginPath: filepath.Join(dir, "plugins"), PluginConfigPath: filepath.Join(dir, "conf.d"),
		RegistrationTimeout: 5 * time.Second, RequestTimeout: 2 * time.Second}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(rt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	s, err := stub.New(p, append([]stub.Option{stub.WithPluginName("test"), stub.WithPluginIdx("10"), stub.WithSocketPath(sock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	for deadline := time.Now().Add(10 * time.Second); !n.Active(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("plugin did not register")
		}
	}
	return n, s
}

func TestNilIsDisabled(t *testing.T) {
	var n *NRI
	ctx := context.Background()
	info := func() (Pod, Container, error) { t.Fatal("info built for nobody"); return Pod{}, Container{}, nil }
	if n.Active() || n.Start(nil) != nil || n.RunPodSandbox(ctx, Pod{}) != nil || n.StopContainer(ctx, "x", info) != nil ||
		n.RemoveContainer(ctx, "x", info) != nil || n.CreateContainer(ctx, Pod{}, Container{}, Resolvers{}) != nil {
		t.Fatal("a nil NRI did something")
	}
	n.BlockSync()()
	n.Stop()
}

func TestEventsOnceAndInOrder(t *testing.T) {
	s := goldenSpec(t)
	rt := &fakeRuntime{pods: []Pod{{ID: "pod0"}}, ctrs: []Container{
		{ID: "run0", PodID: "pod0", Status: StatusRunning, Spec: s},
		{ID: "exited0", PodID: "pod0", Status: StatusStopped, Spec: s},
	}}
	p := &testPlugin{}
	n, _ := start(t, rt, p)
	if want := []string{"pod pod0", "container run0"}; !slices.Equal(p.synced, want) {
		t.Errorf("synchronised with %v, want %v (live containers only)", p.synced, want)
	}
	ctx := context.Background()
	pod := Pod{ID: "pod1", Name: "web"}
	info := func() (Pod, Container, error) {
		return pod, Container{ID: "c1", PodID: "pod1", Name: "app", Spec: s}, nil
	}
	if err := n.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateContainer(ctx, pod, Container{ID: "c1", PodID: "pod1", Name: "app", Spec: s}, Resolvers{}); err != nil {
		t.Fatal(err)
	}
	if err := n.StartContainer(ctx, "c1", info); err != nil {
		t.Fatal(err)
	}
	// The CRI stop and the exit both report; plugins hear once.
	for range 2 {
		if err := n.StopContainer(ctx, "c1", info); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.RemoveContainer(ctx, "c1", info); err != nil {
		t.Fatal(err)
	}
	// A running container removed at once: its stop first. The exited
	// one plugins knew of: its removal only. An unknown one: nothing.
	for _, id := range []string{"run0", "exited0", "never"} {
		if err := n.RemoveContainer(ctx, id, func() (Pod, Container, error) { return pod, Container{ID: id}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"RunPodSandbox pod1", "CreateContainer c1/app", "StartContainer c1", "StopContainer c1", "RemoveContainer c1",
		"StopContainer run0", "RemoveContainer run0", "RemoveContainer exited0", "StopPodSandbox pod1"}
	waitEvents(t, p, want)
	if n.state.len() != 0 {
		t.Errorf("%d containers left in the event table", n.state.len())
	}
}

func waitEvents(t *testing.T, p *testPlugin, want []string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if slices.Equal(p.seen(), want) {
			return
		}
	}
	t.Errorf("plugin saw\n%q\nwant\n%q", p.seen(), want)
}

func TestRefusalsFail(t *testing.T) {
	p := &testPlugin{failRun: true}
	n, _ := start(t, &fakeRuntime{}, p)
	err := n.RunPodSandbox(context.Background(), Pod{ID: "pod1"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !contains(err.Error(), "no pods today") {
		t.Errorf("RunPodSandbox refused by a plugin: %v, want FailedPrecondition with the plugin's reason", err)
	}
}

// TestCreateAdjusts: a plugin's adjustment reaches the spec; a failed
// adjustment tells plugins the container is gone.
func TestCreateAdjusts(t *testing.T) {
	p := &testPlugin{}
	n, _ := start(t, &fakeRuntime{}, p)
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("FROM_NRI", "yes")
	adj.AddRlimit("RLIMIT_NOFILE", 2048, 1024)
	adj.SetLinuxMemoryLimit(64 << 20)
	p.adjust = adj
	s := goldenSpec(t)
	pod := Pod{ID: "pod1"}
	if err := n.CreateContainer(context.Background(), pod, Container{ID: "c1", Spec: s}, Resolvers{}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "FROM_NRI=yes") {
		t.Errorf("env %v lacks FROM_NRI=yes", s.Process.Env)
	}
	if got := *s.Linux.Resources.Memory.Limit; got != 64<<20 {
		t.Errorf("memory limit %d", got)
	}
	nofile := 0
	for _, r := range s.Process.Rlimits {
		if r.Type == "RLIMIT_NOFILE" {
			nofile++
			if r.Hard != 2048 || r.Soft != 1024 {
				t.Errorf("RLIMIT_NOFILE %+v", r)
			}
		}
	}
	if nofile != 1 {
		t.Errorf("%d RLIMIT_NOFILE entries, want the plugin's only", nofile)
	}

	bad := &api.ContainerAdjustment{}
	bad.SetLinuxRDTClass("gold")
	p.adjust = bad
	err := n.CreateContainer(context.Background(), pod, Container{ID: "c2", Spec: goldenSpec(t)}, Resolvers{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("RDT class without RDT: %v, want FailedPrecondition", err)
	}
	waitEvents(t, p, []string{"CreateContainer c1/", "CreateContainer c2/", "StopContainer c2", "RemoveContainer c2"})
}

func TestUnsolicitedUpdates(t *testing.T) {
	s := goldenSpec(t)
	rt := &fakeRuntime{ctrs: []Container{{ID: "run0", Status: StatusRunning, Spec: s}, {ID: "exited0", Status: StatusStopped, Spec: s}}}
	_, st := start(t, rt, &testPlugin{})
	limit := &api.LinuxResources{Memory: &api.LinuxMemory{Limit: api.Int64(128 << 20)}, Cpu: &api.LinuxCPU{Cpus: "0"}}
	failed, err := st.UpdateContainers([]*api.ContainerUpdate{
		{ContainerId: "run0", Linux: &api.LinuxContainerUpdate{Resources: limit}},
		{ContainerId: "exited0", Linux: &api.LinuxContainerUpdate{Resources: limit}},
		{ContainerId: "gone", Linux: &api.LinuxContainerUpdate{Resources: limit}},
	})
	if err != nil || len(failed) != 0 {
		t.Fatalf("UpdateContainers = %v, %v", failed, err)
	}
	got := rt.updated["run0"]
	if got == nil || *got.Memory.Limit != 128<<20 || got.CPU.Cpus != "0" || got.CPU.Shares == nil {
		t.Errorf("run0 updated to %+v; want the new limit and cpus over its own resources", got)
	}
	if len(rt.updated) != 1 {
		t.Errorf("updated %v, want run0 only (exited and unknown skipped)", rt.updated)
	}
	refused := &api.LinuxResources{RdtClass: api.String("gold")}
	failed, err = st.UpdateContainers([]*api.ContainerUpdate{
		{ContainerId: "run0", Linux: &api.LinuxContainerUpdate{Resources: refused}},
		{ContainerId: "run0", Linux: &api.LinuxContainerUpdate{Resources: refused}, IgnoreFailure: true},
	})
	if err != nil || len(failed) != 1 || failed[0].GetIgnoreFailure() {
		t.Errorf("refused update: failed %v, %v; want the one without ignore_failure", failed, err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestEvictions: evictions a plugin sends (which NRI v0.12.5's stub has no
// call for, so the test's plugin adds them on its side of the wire) reach
// crib from UpdateContainers and from a CreateContainer answer.
func TestEvictions(t *testing.T) {
	rt := &fakeRuntime{}
	addToUpdate := func(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, info *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
		if info.FullMethod == updateContainersMethod {
			var m api.UpdateContainersRequest
			if err := proto.Unmarshal(req.Payload, &m); err != nil {
				return err
			}
			m.Evict = append(m.Evict, &api.ContainerEviction{ContainerId: "noisy", Reason: "too loud"})
			b, err := proto.Marshal(&m)
			if err != nil {
				return err
			}
			req.Payload = b
		}
		return invoke(ctx, req, resp)
	}
	addToCreate := func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		resp, err := method(ctx, unmarshal)
		if r, ok := resp.(*api.CreateContainerResponse); ok && info.FullMethod == createContainerMethod {
			r.Evict = append(r.Evict, &api.ContainerEviction{ContainerId: "victim", Reason: "room for c1"})
		}
		return resp, err
	}
	n, st := start(t, rt, &testPlugin{}, stub.WithTTRPCOptions([]ttrpc.ClientOpts{ttrpc.WithUnaryClientInterceptor(addToUpdate)},
		[]ttrpc.ServerOpt{ttrpc.WithUnaryServerInterceptor(addToCreate)}))
	if _, err := st.UpdateContainers(nil); err != nil {
		t.Fatal(err)
	}
	if err := n.CreateContainer(context.Background(), Pod{ID: "p"}, Container{ID: "c1", Spec: goldenSpec(t)}, Resolvers{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"noisy: too loud", "victim: room for c1"}
	for deadline := time.Now().Add(5 * time.Second); !slices.Equal(rt.evictions(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("evicted %q, want %q", rt.evictions(), want)
		}
	}
}

// Plugins crib runs as root must be root's alone, with their directory.
func TestTrustedPlugins(t *testing.T) {
	dir := t.TempDir()
	plugins, conf := filepath.Join(dir, "plugins"), filepath.Join(dir, "conf.d")
	for _, d := range []string{plugins, conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(plugins, "10-x"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := trustedPlugins(plugins, conf); err != nil {
		t.Fatalf("root's plugins: %v", err)
	}
	if err := trustedPlugins(filepath.Join(dir, "none"), conf); err != nil {
		t.Fatalf("no plugin directory: %v", err)
	}
	if err := os.Chmod(filepath.Join(plugins, "10-x"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := trustedPlugins(plugins, conf); err == nil || !strings.Contains(err.Error(), "10-x") {
		t.Errorf("a world-writable plugin: %v, want a refusal naming it", err)
	}
	if err := os.Chmod(filepath.Join(plugins, "10-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := trustedPlugins(plugins, conf); err == nil || !strings.Contains(err.Error(), "conf.d") {
		t.Errorf("a world-writable config directory: %v, want a refusal naming it", err)
	}
}
