package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// fakeShim keeps container states in memory and records the calls.
type fakeShim struct {
	mu        sync.Mutex
	states    map[string]*shimapi.ContainerState
	calls     []string
	createErr error
	deleteErr error
	lastSpec  []byte
	// ignoreTerm makes a container survive its stop signal.
	ignoreTerm bool
	// afterCreate, when set, runs at the end of every Create;
	// beforeCreate at its start, before the shim knows the container;
	// beforeUpdate at the start of every Update.
	afterCreate, beforeCreate, beforeUpdate func()
	// limits is the pids limit each container's cgroup has now: from the
	// spec at Create, then from every Update.
	limits map[string]int64
	// wedged makes List hang until its caller gives up.
	wedged bool
}

func newFakeShim() *fakeShim {
	return &fakeShim{states: map[string]*shimapi.ContainerState{}, limits: map[string]int64{}}
}

// pidsLimit reads linux.resources.pids.limit from a spec or a resources
// object (JSON); 0 when absent.
func pidsLimit(data []byte) int64 {
	var v struct {
		Linux struct {
			Resources struct {
				Pids struct{ Limit int64 }
			}
		}
		Pids struct{ Limit int64 }
	}
	_ = json.Unmarshal(data, &v)
	return v.Linux.Resources.Pids.Limit + v.Pids.Limit
}

func (f *fakeShim) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeShim) state(id string) (*shimapi.ContainerState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[id]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	return proto.Clone(s).(*shimapi.ContainerState), nil
}

func (f *fakeShim) Create(_ context.Context, r *shimapi.CreateRequest) (*shimapi.ContainerState, error) {
	f.record("create " + r.Id)
	if f.beforeCreate != nil {
		f.beforeCreate()
	}
	if f.createErr != nil {
		return nil, f.createErr
	}
	if f.afterCreate != nil {
		defer f.afterCreate() // runs after the unlock below
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.states[r.Id]; ok {
		return nil, fmt.Errorf("container %s: %w", r.Id, errdefs.ErrAlreadyExists)
	}
	f.lastSpec = r.Spec
	f.limits[r.Id] = pidsLimit(r.Spec)
	f.states[r.Id] = &shimapi.ContainerState{Id: r.Id, Status: shimapi.Status_CREATED, Pid: 42, CreatedAt: time.Now().UnixNano()}
	return proto.Clone(f.states[r.Id]).(*shimapi.ContainerState), nil
}

func (f *fakeShim) Start(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	f.record("start " + r.Id)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[r.Id]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	if s.Status != shimapi.Status_CREATED { // as the shim: one start
		return nil, fmt.Errorf("start container %s: %s: %w", r.Id, s.Status, errdefs.ErrFailedPrecondition)
	}
	s.Status, s.StartedAt = shimapi.Status_RUNNING, time.Now().UnixNano()
	return proto.Clone(s).(*shimapi.ContainerState), nil
}

func (f *fakeShim) Kill(_ context.Context, r *shimapi.KillRequest) (*shimapi.Empty, error) {
	f.record("kill " + r.Id + " " + syscall.Signal(r.Signal).String())
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[r.Id]
	if !ok {
		return nil, errdefs.ErrNotFound
	}
	if r.Signal == int32(syscall.SIGKILL) || !f.ignoreTerm {
		s.Status, s.ExitCode, s.Reason, s.FinishedAt = shimapi.Status_EXITED, 128+r.Signal, "Error", time.Now().UnixNano()
	}
	return &shimapi.Empty{}, nil
}

func (f *fakeShim) Wait(ctx context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	for {
		s, err := f.state(r.Id)
		if err != nil || s.Status == shimapi.Status_EXITED {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (f *fakeShim) State(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.ContainerState, error) {
	return f.state(r.Id)
}

func (f *fakeShim) Delete(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.Empty, error) {
	f.record("delete " + r.Id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deleteErr != nil {
		return nil, f.deleteErr
	}
	if s, ok := f.states[r.Id]; ok && s.Status == shimapi.Status_RUNNING {
		return nil, errdefs.ErrFailedPrecondition
	}
	delete(f.states, r.Id)
	delete(f.limits, r.Id)
	return &shimapi.Empty{}, nil
}

func (f *fakeShim) ReopenLog(_ context.Context, r *shimapi.ContainerRequest) (*shimapi.Empty, error) {
	f.record("reopen " + r.Id)
	return &shimapi.Empty{}, nil
}

func (f *fakeShim) List(ctx context.Context, _ *shimapi.Empty) (*shimapi.ListResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wedged {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	resp := &shimapi.ListResponse{}
	for _, s := range f.states {
		resp.Containers = append(resp.Containers, proto.Clone(s).(*shimapi.ContainerState))
	}
	return resp, nil
}

func (f *fakeShim) Update(_ context.Context, r *shimapi.UpdateRequest) (*shimapi.Empty, error) {
	f.record("update " + r.Id + " " + string(r.Resources))
	if f.beforeUpdate != nil {
		f.beforeUpdate()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.states[r.Id]; !ok {
		return nil, errdefs.ErrNotFound
	}
	f.limits[r.Id] = pidsLimit(r.Resources)
	return &shimapi.Empty{}, nil
}

func (f *fakeShim) ExecSync(_ context.Context, r *shimapi.ExecSyncRequest) (*shimapi.ExecSyncResponse, error) {
	if _, err := f.state(r.Id); err != nil {
		return nil, err
	}
	return &shimapi.ExecSyncResponse{Stdout: r.Process, ExitCode: 3}, nil
}

// shims serves one fakeShim per pod; a pod missing from the map has no shim.
type shims map[string]*fakeShim

func (s shims) Shim(_ context.Context, pod string) (Shim, error) {
	if f, ok := s[pod]; ok {
		return f, nil
	}
	return nil, errdefs.ErrNotFound
}

func newContainer(pod, name string) Container {
	return Container{ID: NewID(), SandboxID: pod, Name: name, CreatedAt: time.Now(), StopSignal: int(syscall.SIGTERM)}
}

// newWorld is a manager, in a fresh root, whose pod "pod" has one fake shim.
func newWorld(t *testing.T) (*Manager, *fakeShim, string) {
	t.Helper()
	root, shim := t.TempDir(), newFakeShim()
	m, err := Open(root, shims{"pod": shim})
	if err != nil {
		t.Fatal(err)
	}
	return m, shim, root
}

// startNew creates and starts a container of pod "pod".
func startNew(t *testing.T, m *Manager, name string) Container {
	t.Helper()
	c := newContainer("pod", name)
	create(t, m, c)
	if _, err := m.Start(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

func create(t *testing.T, m *Manager, c Container) State {
	t.Helper()
	st, err := m.Create(context.Background(), c, CreateOptions{Spec: &specs.Spec{Root: &specs.Root{}}, Layers: []string{"/l"}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLifecycle(t *testing.T) {
	root := t.TempDir()
	shim := newFakeShim()
	m, err := Open(root, shims{"pod": shim})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := newContainer("pod", "web")
	if st := create(t, m, c); st.Status != StatusCreated || st.Pid != 0 {
		t.Fatalf("created: %+v", st)
	}
	// Until Start, a container is its record: the shim has not seen it.
	if st, err := m.Status(ctx, c.ID); err != nil || st.Status != StatusCreated || len(shim.calls) != 0 {
		t.Fatalf("created: %+v, %v; shim calls %v", st, err, shim.calls)
	}
	if _, err := m.ExecSync(ctx, c.ID, []byte(`{}`), time.Second); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("exec in a created container: %v", err)
	}
	// ExecSync asks no shim for the state first: a container whose pod's
	// shim is gone is still not running, not unknown.
	orphan := newContainer("gone", "web")
	create(t, m, orphan)
	if _, err := m.ExecSync(ctx, orphan.ID, []byte(`{}`), time.Second); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("exec in a container whose shim is gone: %v", err)
	}
	if rec, err := m.Record(orphan.ID); err != nil || rec.ID != orphan.ID {
		t.Fatalf("Record = %+v, %v", rec, err)
	}
	if _, err := m.Remove(ctx, orphan.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateResources(ctx, c.ID, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(7))}}); err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(ctx, newContainer("pod", "web"), CreateOptions{Spec: &specs.Spec{Root: &specs.Root{}}})
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), c.ID) {
		t.Fatalf("duplicate name: %v, want AlreadyExists naming %s", err, c.ID)
	}
	if pod, err := m.Start(ctx, c.ID); err != nil || pod != "pod" {
		t.Fatalf("start: %s, %v", pod, err)
	}
	// The shim got the spec with the update made before the start.
	if !strings.Contains(string(shim.lastSpec), `"pids":{"limit":7}`) || !strings.Contains(strings.Join(shim.calls, ","), "create "+c.ID+",start "+c.ID) {
		t.Fatalf("hand-over: calls %v, spec %s", shim.calls, shim.lastSpec)
	}
	if st, err := m.Status(ctx, c.ID); err != nil || st.Status != StatusRunning || st.Pid != 42 {
		t.Fatalf("started: %+v, %v", st, err)
	}
	if id, err := m.Resolve(c.ID[:8]); err != nil || id != c.ID {
		t.Fatalf("Resolve prefix = %s, %v", id, err)
	}
	if err := m.Stop(ctx, c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := m.Status(ctx, c.ID)
	if err != nil || st.Status != StatusExited || st.ExitCode != 128+15 {
		t.Fatalf("after stop: %+v, %v", st, err)
	}
	if err := m.Stop(ctx, c.ID, time.Second); err != nil {
		t.Fatalf("stopping an exited container: %v", err)
	}
	// A restart of the daemon finds the record.
	m2, err := Open(root, shims{"pod": shim})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := m2.List(ctx); err != nil || len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("after reopen: %+v, %v", list, err)
	}
	if pod, err := m2.Remove(ctx, c.ID); err != nil || pod != "pod" {
		t.Fatalf("remove: %s, %v", pod, err)
	}
	m2.Drain()
	if _, err := m2.Remove(ctx, c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "containers")); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	// The name is free again.
	create(t, m2, newContainer("pod", "web"))
}

// TestRemoveRunning: a running container is killed, then deleted.
func TestRemoveRunning(t *testing.T) {
	m, shim, _ := newWorld(t)
	ctx := context.Background()
	c := startNew(t, m, "busy")
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	got := strings.Join(shim.calls, ",")
	if !strings.Contains(got, "kill "+c.ID+" killed") || !strings.HasSuffix(got, "delete "+c.ID) {
		t.Fatalf("calls %s: want a kill, then the delete", got)
	}
}

// TestRemoveAfterWait: a container a Wait saw exit is deleted from its
// shim after Remove returns.
func TestRemoveAfterWait(t *testing.T) {
	m, shim, root := newWorld(t)
	ctx := context.Background()
	c := startNew(t, m, "done")
	if err := m.Stop(ctx, c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Wait(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	before := len(shim.calls)
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	if got := shim.calls[before:]; len(got) != 1 || got[0] != "delete "+c.ID {
		t.Fatalf("calls after the remove: %v, want only the delete", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "containers")); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

// TestStartTakenUp: a start cut short after the shim took the container
// (the daemon restarted in between) finishes on the next StartContainer.
func TestStartTakenUp(t *testing.T) {
	m, shim, _ := newWorld(t)
	ctx := context.Background()
	c := newContainer("pod", "half")
	create(t, m, c)
	if _, err := shim.Create(ctx, &shimapi.CreateRequest{Id: c.ID}); err != nil { // the first, cut-short start
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, c.ID); err != nil {
		t.Fatalf("start taken up: %v", err)
	}
	if st, err := m.Status(ctx, c.ID); err != nil || st.Status != StatusRunning {
		t.Fatalf("after the start: %+v, %v", st, err)
	}
}

// TestRemoveRefusedKeepsRecord: when the shim refuses the delete, the
// record stays, also for a restarted daemon.
func TestRemoveRefusedKeepsRecord(t *testing.T) {
	m, shim, root := newWorld(t)
	ctx := context.Background()
	c := newContainer("pod", "kept")
	create(t, m, c)
	shim.deleteErr = errors.New("shim busy")
	if _, err := m.Remove(ctx, c.ID); err == nil || !strings.Contains(err.Error(), "shim busy") {
		t.Fatalf("remove with a refusing shim: %v", err)
	}
	m2, err := Open(root, shims{"pod": shim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Status(ctx, c.ID); err != nil {
		t.Fatalf("the record did not survive a refused remove: %v", err)
	}
	shim.deleteErr = nil
	if _, err := m2.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	shim := newFakeShim()
	shim.ignoreTerm = true
	m, _ := Open(t.TempDir(), shims{"pod": shim})
	c := newContainer("pod", "stubborn")
	create(t, m, c)
	_, _ = m.Start(context.Background(), c.ID)
	start := time.Now()
	if err := m.Stop(context.Background(), c.ID, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatal("did not wait for the grace period")
	}
	got := strings.Join(shim.calls, ",")
	if !strings.Contains(got, "kill "+c.ID+" terminated") || !strings.Contains(got, "kill "+c.ID+" killed") {
		t.Fatalf("calls %s: want SIGTERM then SIGKILL", got)
	}
}

// TestStartFailure: the shim's refusal (a missing command, a bad mount)
// fails Start; the container stays created and can be removed.
func TestStartFailure(t *testing.T) {
	root := t.TempDir()
	shim := newFakeShim()
	shim.createErr = errors.New("init: exec: no such file")
	m, _ := Open(root, shims{"pod": shim})
	ctx := context.Background()
	c := newContainer("pod", "bad")
	create(t, m, c)
	if _, err := m.Start(ctx, c.ID); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("got %v", err)
	}
	if st, err := m.Status(ctx, c.ID); err != nil || st.Status != StatusCreated {
		t.Fatalf("after a failed start: %+v, %v", st, err)
	}
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	if entries, _ := os.ReadDir(filepath.Join(root, "containers")); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	create(t, m, newContainer("pod", "bad")) // the name was released
}

// TestCreateFailureLeavesNothing: a create that cannot make its directory
// leaves no record and releases the name.
func TestCreateFailureLeavesNothing(t *testing.T) {
	root := t.TempDir()
	m, _ := Open(root, shims{"pod": newFakeShim()})
	c := newContainer("pod", "bad")
	squatter := filepath.Join(root, "containers", c.ID)
	if err := os.WriteFile(squatter, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(context.Background(), c, CreateOptions{Spec: &specs.Spec{Root: &specs.Root{}}}); err == nil {
		t.Fatal("created over a file")
	}
	if _, err := m.Status(context.Background(), c.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a failed create left a record: %v", err)
	}
	create(t, m, newContainer("pod", "bad")) // the name was released
}

func TestShimGoneMeansExitedUnknown(t *testing.T) {
	shim := newFakeShim()
	all := shims{"pod": shim}
	m, _ := Open(t.TempDir(), all)
	c := newContainer("pod", "orphan")
	create(t, m, c)
	delete(all, "pod") // node rebooted: the shim and its state are gone
	st, err := m.Status(context.Background(), c.ID)
	if err != nil || st.Status != StatusExited || st.Reason != "Unknown" {
		t.Fatalf("status without shim: %+v, %v", st, err)
	}
	if _, err := m.Remove(context.Background(), c.ID); err != nil {
		t.Fatalf("remove without shim: %v", err)
	}
}

func TestOpenRemovesOrphanDirs(t *testing.T) {
	root := t.TempDir()
	orphan := filepath.Join(root, "containers", NewID())
	if err := os.MkdirAll(filepath.Join(orphan, "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, shims{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a directory without a record survived Open: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestStartChecksPidTarget: a TARGET container starts only while its
// target runs with the pid its spec names, checked before and after the
// shim joins /proc/<pid>/ns/pid; a target that exits meanwhile leaves the
// new container created, never run.
func TestStartChecksPidTarget(t *testing.T) {
	m, shim, _ := newWorld(t)
	ctx := context.Background()
	target := startNew(t, m, "target") // the fake shim's pid 42
	withTarget := func(name string, pid int) Container {
		c := newContainer("pod", name)
		c.PidTarget, c.PidTargetPid = target.ID, pid
		create(t, m, c)
		return c
	}
	if _, err := m.Start(ctx, withTarget("debug", 42).ID); err != nil {
		t.Fatalf("start with a running target: %v", err)
	}
	reused := withTarget("reused", 43)
	if _, err := m.Start(ctx, reused.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("start against another pid: %v, want FailedPrecondition", err)
	}
	if slices.Contains(shim.calls, "create "+reused.ID) {
		t.Error("the shim joined a namespace the check refused")
	}
	late := withTarget("late", 42)
	shim.afterCreate = func() {
		shim.mu.Lock()
		shim.states[target.ID].Status = shimapi.Status_EXITED
		shim.mu.Unlock()
	}
	if _, err := m.Start(ctx, late.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("start while the target exits: %v, want FailedPrecondition", err)
	}
	if !slices.Contains(shim.calls, "delete "+late.ID) || slices.Contains(shim.calls, "start "+late.ID) {
		t.Errorf("the container whose target exited was not deleted before it ran: %v", shim.calls)
	}
}
