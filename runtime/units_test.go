package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// fakeUnits records its calls in the shim's list, so that their order
// among the shim's shows.
type fakeUnits struct {
	shim     *fakeShim
	adoptErr error
	noUnit   bool // Update answers NotFound
}

func (u *fakeUnits) Adopt(_ context.Context, cgroup string, pid int, r *cgroups.Resources) error {
	pids := int64(0)
	if r != nil && r.PidsMax != nil {
		pids = *r.PidsMax
	}
	u.shim.record(fmt.Sprintf("adopt %s %d pids=%d", cgroup, pid, pids))
	return u.adoptErr
}

func (u *fakeUnits) Update(_ context.Context, cgroup string, r *cgroups.Resources) error {
	u.shim.record(fmt.Sprintf("unit-update %s pids=%d", cgroup, *r.PidsMax))
	if u.noUnit {
		return fmt.Errorf("unit: %w", errdefs.ErrNotFound)
	}
	return nil
}

func (u *fakeUnits) Release(_ context.Context, cgroup string) error {
	u.shim.record("release " + cgroup)
	return nil
}

// unitWorld is a manager whose pod's containers are scopes.
func unitWorld(t *testing.T) (*Manager, *fakeShim, *fakeUnits, Container) {
	t.Helper()
	m, shim, _ := newWorld(t)
	units := &fakeUnits{shim: shim}
	m.Units = units
	c := newContainer("pod", "app")
	c.Cgroup = "/kubepods.slice/kubepods-podu1.slice/" + cgroups.ScopeName(c.ID)
	spec := &specs.Spec{Root: &specs.Root{}, Linux: &specs.Linux{Resources: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(10))}}}}
	if _, err := m.Create(context.Background(), c, CreateOptions{Spec: spec, Layers: []string{"/l"}}); err != nil {
		t.Fatal(err)
	}
	return m, shim, units, c
}

// TestUnitLifecycle: the scope is made once the process exists, before
// it runs (Start), given new limits before the shim writes them, and
// stopped once the shim has deleted the container.
func TestUnitLifecycle(t *testing.T) {
	ctx := context.Background()
	m, shim, _, c := unitWorld(t)
	if _, err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateResources(ctx, c.ID, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(20))}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	var got []string
	for _, call := range shim.calls {
		if !strings.HasPrefix(call, "kill") {
			got = append(got, strings.Fields(call)[0])
		}
	}
	want := []string{"create", "adopt", "start", "unit-update", "update", "delete", "release"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s\nall: %q", diff, shim.calls)
	}
	if !slices.Contains(shim.calls, fmt.Sprintf("adopt %s 42 pids=10", c.Cgroup)) || !slices.Contains(shim.calls, "release "+c.Cgroup) {
		t.Errorf("calls %q: want the scope adopted with the process and the spec's limits, and released", shim.calls)
	}
}

// TestUnitAdoptFails: a scope systemd would not make fails the start; the
// process goes without having run, and so does whatever became of the
// scope.
func TestUnitAdoptFails(t *testing.T) {
	ctx := context.Background()
	m, shim, units, c := unitWorld(t)
	units.adoptErr = fmt.Errorf("systemd's job ended %q", "failed")
	if _, err := m.Start(ctx, c.ID); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("Start = %v", err)
	}
	want := []string{"create " + c.ID, fmt.Sprintf("adopt %s 42 pids=10", c.Cgroup), "delete " + c.ID, "release " + c.Cgroup}
	if diff := cmp.Diff(want, shim.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if st, err := m.Status(ctx, c.ID); err != nil || st.Status != StatusCreated {
		t.Errorf("after the failed start: %+v, %v", st, err)
	}
}

// TestUnitStartTakenUp: a start cut short after the shim took the
// container adopts the shim's process.
func TestUnitStartTakenUp(t *testing.T) {
	ctx := context.Background()
	m, shim, _, c := unitWorld(t)
	if _, err := shim.Create(ctx, &shimapi.CreateRequest{Id: c.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(shim.calls, fmt.Sprintf("adopt %s 42 pids=10", c.Cgroup)) {
		t.Errorf("calls %q: want the process of the first start adopted", shim.calls)
	}
}

// TestUnitUpdateBeforeStart: a created container has no unit yet; its
// update is the spec's.
func TestUnitUpdateBeforeStart(t *testing.T) {
	m, shim, units, c := unitWorld(t)
	units.noUnit = true
	if err := m.UpdateResources(context.Background(), c.ID, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(20))}}); err != nil {
		t.Fatal(err)
	}
	if got := pidsLimit(mustRecord(t, m, c.ID).Spec); got != 20 {
		t.Errorf("recorded spec's pids limit %d, want 20 (calls %q)", got, shim.calls)
	}
}

func mustRecord(t *testing.T, m *Manager, id string) Container {
	t.Helper()
	c, err := m.get(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestShimGoneScope: a container whose shim is gone is killed and removed
// through its scope's cgroup, which is its own, and the scope stopped.
func TestShimGoneScope(t *testing.T) {
	ctx := context.Background()
	m, err := Open(t.TempDir(), shims{})
	if err != nil {
		t.Fatal(err)
	}
	cg, shim := &fakeCgroups{}, newFakeShim()
	m.Cgroups, m.Units = cg, &fakeUnits{shim: shim}
	c := newContainer("pod", "app")
	c.Cgroup = "/kubepods.slice/" + cgroups.ScopeName(c.ID)
	create(t, m, c)
	if _, err := m.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if len(cg.freed) != 1 || cg.freed[0] != c.Cgroup || !slices.Equal(shim.calls, []string{"release " + c.Cgroup}) {
		t.Errorf("removed %v, units %q; want %s removed and released", cg.freed, shim.calls, c.Cgroup)
	}
	other := newContainer("pod", "other")
	other.Cgroup = "/kubepods.slice/" + cgroups.ScopeName("x")
	create(t, m, other)
	if _, err := m.Remove(ctx, other.ID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Remove of a record naming another scope = %v, want FailedPrecondition", err)
	}
}
