package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
)

const scopePath = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crib-c1.scope"

// fakeBus is systemd as Units sees it: it records calls, answers jobs
// with result (never, when hold is set) and errors from errs.
type fakeBus struct {
	mu        sync.Mutex
	calls     []string
	props     map[string][]sd.Property
	result    string
	hold      bool
	errs      map[string][]error // per method, consumed in order
	unitOfPID map[uint32]string
	lost      bool
}

func newFakeBus() *fakeBus {
	return &fakeBus{props: map[string][]sd.Property{}, result: resultDone, errs: map[string][]error{}, unitOfPID: map[uint32]string{}}
}

func (f *fakeBus) record(method, unit string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method+" "+unit)
	if errs := f.errs[method]; len(errs) > 0 {
		f.errs[method] = errs[1:]
		if errors.Is(errs[0], dbus.ErrClosed) {
			f.lost = true
		}
		return errs[0]
	}
	return nil
}

func (f *fakeBus) job(ctx context.Context, ch chan<- string) {
	if f.hold {
		return
	}
	go func() { ch <- f.result }()
}

func (f *fakeBus) StartTransientUnitContext(ctx context.Context, name, mode string, props []sd.Property, ch chan<- string) (int, error) {
	if mode != modeReplace {
		return 0, fmt.Errorf("mode %q", mode)
	}
	if err := f.record("start", name); err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.props[name] = props
	for _, p := range props {
		if p.Name == "PIDs" {
			for _, pid := range p.Value.Value().([]uint32) {
				f.unitOfPID[pid] = name
			}
		}
	}
	f.mu.Unlock()
	f.job(ctx, ch)
	return 1, nil
}

func (f *fakeBus) StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	if err := f.record("stop", name); err != nil {
		return 0, err
	}
	f.job(ctx, ch)
	return 2, nil
}

func (f *fakeBus) ResetFailedUnitContext(_ context.Context, name string) error {
	return f.record("reset-failed", name)
}

func (f *fakeBus) SetUnitPropertiesContext(_ context.Context, name string, runtime bool, props ...sd.Property) error {
	if !runtime {
		return errors.New("properties must not outlive a reboot")
	}
	if err := f.record("set", name); err != nil {
		return err
	}
	f.mu.Lock()
	f.props[name] = props
	f.mu.Unlock()
	return nil
}

func (f *fakeBus) GetUnitNameByPID(_ context.Context, pid uint32) (string, error) {
	if err := f.record("unit-of", fmt.Sprint(pid)); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unitOfPID[pid], nil
}

func (f *fakeBus) GetManagerProperty(name string) (string, error) {
	if name != "Version" {
		return "", fmt.Errorf("property %s", name)
	}
	return `"252.33-1~deb12u1"`, nil
}

func (f *fakeBus) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.lost
}

func (f *fakeBus) Close() {
	f.mu.Lock()
	f.lost = true
	f.mu.Unlock()
}

func (f *fakeBus) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// fakeFiles records crib's own writes.
type fakeFiles struct {
	mode    cgroups.Mode
	updates []string
	bus     *fakeBus // the order of the writes among the calls
}

func (f *fakeFiles) Update(path string, _ *cgroups.Resources) error {
	f.updates = append(f.updates, path)
	if f.bus != nil {
		_ = f.bus.record("files-update", path)
	}
	return nil
}
func (f *fakeFiles) Mode() cgroups.Mode { return f.mode }

// newUnits returns Units on bus with /proc/<pid>/cgroup files under a
// temporary directory: cgroupOf(pid) sets one.
func newUnits(t *testing.T, mode cgroups.Mode, buses ...*fakeBus) (*Units, *fakeFiles, func(pid int, lines ...string), *int) {
	t.Helper()
	files := &fakeFiles{mode: mode, bus: buses[0]}
	dials := 0
	u := New(files, func(context.Context) (Bus, error) {
		if dials >= len(buses) {
			return nil, errors.New("no more buses")
		}
		dials++
		return buses[dials-1], nil
	})
	u.proc = t.TempDir()
	u.Timeout = 5 * time.Second
	setNSpid(t, u.proc, "self", "4242")
	setNSpid(t, u.proc, "1", "1")
	set := func(pid int, lines ...string) {
		dir := filepath.Join(u.proc, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return u, files, set, &dials
}

// setNSpid writes proc/<pid>/status with the NSpid line the kernel
// shows for pids (one per pid namespace level).
func setNSpid(t *testing.T, proc, pid string, pids ...string) {
	t.Helper()
	dir := filepath.Join(proc, pid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Name:\tcrib\nNSpid:\t" + strings.Join(pids, "\t") + "\nNSpgid:\t1\n"
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAdopt(t *testing.T) {
	bus := newFakeBus()
	u, files, set, _ := newUnits(t, cgroups.ModeUnified, bus)
	set(42, "0::"+scopePath)
	r := &cgroups.Resources{CPUWeight: ptr(uint64(39)), MemoryMaxBytes: ptr(int64(1 << 30))}
	if err := u.Adopt(t.Context(), scopePath, 42, r); err != nil {
		t.Fatal(err)
	}
	want := []string{"start crib-c1.scope", "unit-of 42", "files-update " + scopePath}
	if diff := cmp.Diff(want, bus.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	got := values(bus.props["crib-c1.scope"])
	for k, v := range map[string]any{"Slice": "kubepods-burstable-pod1.slice", "PIDs": []uint32{42}, "Delegate": true,
		"CPUWeight": uint64(39), "MemoryMax": uint64(1 << 30), "OOMPolicy": "continue"} {
		if !cmp.Equal(got[k], v) {
			t.Errorf("property %s = %v, want %v", k, got[k], v)
		}
	}
	if len(files.updates) != 1 {
		t.Errorf("crib's writes after systemd's: %v", files.updates)
	}
}

// TestAdoptV1 checks the process against name=systemd, the hierarchy
// systemd tracks processes in on v1, and that a node container's prefix
// (no cgroup namespace) is no mismatch.
func TestAdoptV1(t *testing.T) {
	bus := newFakeBus()
	u, _, set, _ := newUnits(t, cgroups.ModeHybrid, bus)
	set(42, "12:memory:/elsewhere", "1:name=systemd:/docker/0123"+scopePath, "0::/elsewhere")
	if err := u.Adopt(t.Context(), scopePath, 42, nil); err != nil {
		t.Fatal(err)
	}
	if got := values(bus.props["crib-c1.scope"]); got["BlockIOAccounting"] != true || got["OOMPolicy"] != nil {
		t.Errorf("v1 scope properties: %v", got)
	}
}

func TestAdoptElsewhere(t *testing.T) {
	for name, lines := range map[string][]string{
		"other cgroup":  {"0::/kubepods.slice/crib-c2.scope"},
		"no systemd":    {"3:memory:" + scopePath},
		"a longer name": {"0::/x" + strings.TrimSuffix(scopePath, "/crib-c1.scope") + "/xcrib-c1.scope"},
	} {
		bus := newFakeBus()
		u, files, set, _ := newUnits(t, cgroups.ModeUnified, bus)
		set(42, lines...)
		err := u.Adopt(t.Context(), scopePath, 42, &cgroups.Resources{})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) || len(files.updates) != 0 {
			t.Errorf("%s: Adopt = %v, writes %v; want FailedPrecondition and none", name, err, files.updates)
		}
	}
	// systemd disagrees with the kernel.
	bad := &fakeBusNoPID{newFakeBus()}
	u, _, set, _ := newUnits(t, cgroups.ModeUnified, bad.fakeBus)
	u.conn.dial = func(context.Context) (Bus, error) { return bad, nil }
	set(42, "0::"+scopePath)
	if err := u.Adopt(t.Context(), scopePath, 42, nil); err == nil || !strings.Contains(err.Error(), "systemd has pid 42 in unit init.scope") {
		t.Errorf("Adopt with systemd placing pid elsewhere = %v", err)
	}
}

// fakeBusNoPID is systemd that has the pid somewhere else.
type fakeBusNoPID struct{ *fakeBus }

func (f *fakeBusNoPID) GetUnitNameByPID(context.Context, uint32) (string, error) {
	return "init.scope", nil
}

func TestAdoptJobFails(t *testing.T) {
	bus := newFakeBus()
	bus.result = "failed"
	u, files, set, _ := newUnits(t, cgroups.ModeUnified, bus)
	set(42, "0::"+scopePath)
	err := u.Adopt(t.Context(), scopePath, 42, &cgroups.Resources{})
	if err == nil || !strings.Contains(err.Error(), `ended "failed"`) || !strings.Contains(err.Error(), "crib-c1.scope") {
		t.Fatalf("Adopt = %v, want the job's result", err)
	}
	want := []string{"start crib-c1.scope", "reset-failed crib-c1.scope"}
	if diff := cmp.Diff(want, bus.Calls()); diff != "" || len(files.updates) != 0 {
		t.Errorf("calls (-want +got):\n%s; writes %v", diff, files.updates)
	}
}

func TestAdoptTimeout(t *testing.T) {
	bus := newFakeBus()
	bus.hold = true // systemd never finishes the job
	u, _, set, _ := newUnits(t, cgroups.ModeUnified, bus)
	u.Timeout = 50 * time.Millisecond
	set(42, "0::"+scopePath)
	start := time.Now()
	err := u.Adopt(t.Context(), scopePath, 42, nil)
	if !errors.Is(err, errdefs.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Adopt = %v, want Unavailable on the deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Adopt took %v with a 50ms timeout", d)
	}
}

// TestDialTimeout: a systemd that does not even accept the connection.
func TestDialTimeout(t *testing.T) {
	hung := make(chan struct{})
	defer close(hung)
	u := New(&fakeFiles{mode: cgroups.ModeUnified}, func(context.Context) (Bus, error) { <-hung; return nil, errors.New("late") })
	u.Timeout = 50 * time.Millisecond
	if _, err := u.Connect(t.Context()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Connect = %v, want Unavailable", err)
	}
}

func TestAdoptExisting(t *testing.T) {
	exists := dbus.Error{Name: errUnitExists, Body: []any{"Unit crib-c1.scope already exists."}}
	// Adopted before a daemon restart: the pid is there, nothing to do.
	bus := newFakeBus()
	bus.errs["start"] = []error{exists}
	bus.unitOfPID[42] = "crib-c1.scope"
	u, _, set, _ := newUnits(t, cgroups.ModeUnified, bus)
	set(42, "0::"+scopePath)
	if err := u.Adopt(t.Context(), scopePath, 42, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"start crib-c1.scope", "unit-of 42", "unit-of 42"}, bus.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	// A failed leftover, which systemd does not have the pid in: reset,
	// and started once more.
	bus = newFakeBus()
	bus.errs["start"] = []error{exists}
	u, _, set, _ = newUnits(t, cgroups.ModeUnified, bus)
	set(42, "0::"+scopePath)
	if err := u.Adopt(t.Context(), scopePath, 42, nil); err != nil {
		t.Errorf("Adopt over a failed leftover = %v", err)
	}
	want := []string{"start crib-c1.scope", "unit-of 42", "reset-failed crib-c1.scope", "start crib-c1.scope", "unit-of 42"}
	if diff := cmp.Diff(want, bus.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	// Exists twice: the error.
	bus = newFakeBus()
	bus.errs["start"] = []error{exists, exists}
	u, _, set, _ = newUnits(t, cgroups.ModeUnified, bus)
	set(42, "0::"+scopePath)
	if err := u.Adopt(t.Context(), scopePath, 42, nil); !dbusError(err, errUnitExists) {
		t.Errorf("Adopt = %v, want UnitExists", err)
	}
}

func TestAdoptRefuses(t *testing.T) {
	bus := newFakeBus()
	u, _, _, dials := newUnits(t, cgroups.ModeUnified, bus)
	for _, tc := range []struct {
		path string
		pid  int
	}{{"/kubepods/pod1/c1", 42}, {"/kubepods.slice/other-x.slice/crib-c1.scope", 42}, {"/kubepods.slice/crib-c1.scope", 0}} {
		if err := u.Adopt(t.Context(), tc.path, tc.pid, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Adopt(%q, %d) = %v, want InvalidArgument", tc.path, tc.pid, err)
		}
	}
	if *dials != 0 {
		t.Errorf("dialled systemd for nothing")
	}
}

// TestReconnect: systemd re-executed (or the bus restarted) since the last
// call; the call goes through on a new connection.
func TestReconnect(t *testing.T) {
	first, second := newFakeBus(), newFakeBus()
	u, _, _, dials := newUnits(t, cgroups.ModeUnified, first, second)
	if _, err := u.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	first.errs["stop"] = []error{dbus.ErrClosed}
	if err := u.Release(t.Context(), scopePath); err != nil {
		t.Fatal(err)
	}
	if *dials != 2 {
		t.Errorf("dialled %d times, want 2", *dials)
	}
	if diff := cmp.Diff([]string{"stop crib-c1.scope", "reset-failed crib-c1.scope"}, second.Calls()); diff != "" {
		t.Errorf("calls on the new connection (-want +got):\n%s", diff)
	}
	// A connection that went away between calls is replaced before use.
	second.Close()
	if err := u.Release(t.Context(), scopePath); !strings.Contains(fmt.Sprint(err), "no more buses") || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Release without systemd = %v, want Unavailable", err)
	}
}

func TestRelease(t *testing.T) {
	bus := newFakeBus()
	u, _, _, dials := newUnits(t, cgroups.ModeUnified, bus)
	if err := u.Release(t.Context(), scopePath); err != nil {
		t.Fatal(err)
	}
	if err := u.Release(t.Context(), "/crib.slice/crib-pod1.slice"); err != nil {
		t.Fatal(err)
	}
	want := []string{"stop crib-c1.scope", "reset-failed crib-c1.scope", "stop crib-pod1.slice", "reset-failed crib-pod1.slice"}
	if diff := cmp.Diff(want, bus.Calls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	// Gone already, and a job that failed: both released.
	noSuch := dbus.Error{Name: errNoSuchUnit, Body: []any{"Unit crib-c1.scope not loaded."}}
	bus.errs["stop"] = []error{noSuch}
	bus.errs["reset-failed"] = []error{noSuch}
	if err := u.Release(t.Context(), scopePath); err != nil {
		t.Errorf("Release of a unit systemd does not know = %v", err)
	}
	bus.result = "canceled"
	if err := u.Release(t.Context(), scopePath); err != nil {
		t.Errorf("Release whose stop ended canceled = %v", err)
	}
	// Not a unit's cgroup: nothing to ask.
	n := len(bus.Calls())
	if err := u.Release(t.Context(), "/crib/pod1"); err != nil || len(bus.Calls()) != n || *dials != 1 {
		t.Errorf("Release of a cgroupfs path = %v, calls %v", err, bus.Calls()[n:])
	}
	// A stop that never ends.
	bus.hold = true
	u.Timeout = 50 * time.Millisecond
	if err := u.Release(t.Context(), scopePath); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Release timing out = %v, want Unavailable", err)
	}
}

func TestUpdate(t *testing.T) {
	bus := newFakeBus()
	u, files, _, _ := newUnits(t, cgroups.ModeHybrid, bus)
	r := &cgroups.Resources{CPUWeight: ptr(uint64(100)), PidsMax: ptr(int64(64))}
	if err := u.Update(t.Context(), scopePath, r); err != nil {
		t.Fatal(err)
	}
	if got := values(bus.props["crib-c1.scope"]); !cmp.Equal(got, map[string]any{"CPUShares": uint64(2598), "TasksMax": uint64(64)}) {
		t.Errorf("properties set: %v", got)
	}
	if len(files.updates) != 0 {
		t.Errorf("Update wrote files (the shim does): %v", files.updates)
	}
	bus.errs["set"] = []error{dbus.Error{Name: errNoSuchUnit, Body: []any{"Unit crib-c1.scope not loaded."}}}
	if err := u.Update(t.Context(), scopePath, r); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Update of a unit not started = %v, want NotFound", err)
	}
	n := len(bus.Calls())
	if err := u.Update(t.Context(), scopePath, &cgroups.Resources{}); err != nil || len(bus.Calls()) != n {
		t.Errorf("Update with nothing for systemd = %v, calls %v", err, bus.Calls()[n:])
	}
	if err := u.Update(t.Context(), "/crib/pod1/c1", r); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Update of a cgroupfs path = %v", err)
	}
}

// TestMayCreate: a pod may make a missing slice only in crib's root slice
// or a kubepods slice; one that logind fills later (user-1000.slice) is
// FailedPrecondition, so crib never stops it with the pod.
func TestMayCreate(t *testing.T) {
	u := New(&fakeFiles{mode: cgroups.ModeUnified}, nil)
	for _, p := range []string{"/crib.slice", "/crib.slice/crib-pod1.slice", "/kubepods.slice/kubepods-besteffort.slice", "/crib-test/pod1"} {
		if err := u.MayCreate(p); err != nil {
			t.Errorf("MayCreate(%s) = %v", p, err)
		}
	}
	for _, p := range []string{"/user.slice/user-1000.slice", "/machine.slice", "/system.slice/system-sshd.slice"} {
		if err := u.MayCreate(p); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), path.Base(p)) {
			t.Errorf("MayCreate(%s) = %v, want FailedPrecondition naming the slice", p, err)
		}
	}
	u.Root = "/pods.slice"
	if err := u.MayCreate("/crib.slice/crib-pod1.slice"); err == nil {
		t.Errorf("MayCreate in crib.slice with root %s succeeded", u.Root)
	}
}

// TestAdoptReusedPID: a pid that is not in crib's cgroup (crib's process
// died, was reaped, and the pid went to another process) is refused
// before systemd hears of it: systemd would move that process into the
// scope, the check after the start would pass, and the scope's removal
// would kill it.
func TestAdoptReusedPID(t *testing.T) {
	bus := newFakeBus()
	u, files, set, _ := newUnits(t, cgroups.ModeUnified, bus)
	set(42, "0::/user.slice/user-1000.slice/session-1.scope")
	err := u.Adopt(t.Context(), scopePath, 42, &cgroups.Resources{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Adopt = %v, want FailedPrecondition", err)
	}
	if calls := bus.Calls(); len(calls) != 0 || len(files.updates) != 0 {
		t.Errorf("calls %q, writes %q: want none", calls, files.updates)
	}
}

// TestConnectOtherPIDNamespace: a daemon in a pid namespace other than
// systemd's would give systemd pids that name other processes there.
func TestConnectOtherPIDNamespace(t *testing.T) {
	bus := newFakeBus()
	u, _, _, dials := newUnits(t, cgroups.ModeUnified, bus)
	setNSpid(t, u.proc, "self", "31337", "7")
	_, err := u.Connect(t.Context())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "pid namespace") {
		t.Errorf("Connect = %v, want FailedPrecondition naming the pid namespace", err)
	}
	if *dials != 0 {
		t.Errorf("dialled systemd")
	}
}
