package sandbox

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroupstest"
)

// fakeUnits records what the pods' units are told.
type fakeUnits struct {
	mu       sync.Mutex
	calls    []string
	adoptErr error
	// foreign are the cgroups MayCreate refuses.
	foreign []string
}

func (u *fakeUnits) MayCreate(cgroup string) error {
	if slices.Contains(u.foreign, cgroup) {
		return fmt.Errorf("slice %s is not crib's: %w", cgroup, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func (u *fakeUnits) Adopt(_ context.Context, cgroup string, pid int, r *cgroups.Resources) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, fmt.Sprintf("adopt %s %d %v", cgroup, pid, r != nil))
	return u.adoptErr
}

func (u *fakeUnits) Release(_ context.Context, cgroup string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, "release "+cgroup)
	return nil
}

// unitEnv is newEnv whose pods have a pause (pid 4242) and units; the
// pods' parent does not exist, as crictl's crib.slice/crib-pod<id>.slice.
func unitEnv(t *testing.T) (*env, *fakeUnits, Config) {
	e := newEnv(t)
	units := &fakeUnits{}
	e.m.Units = units
	after := e.m.AfterSetup
	e.m.AfterSetup = func(ctx context.Context, p *Pod) error {
		p.PausePID = 4242
		return after(ctx, p)
	}
	c := e.config(t)
	c.SharePID = true
	c.CgroupParent = path.Join(e.parent, "pod"+c.ID[:12])
	c.Cgroup = path.Join(c.CgroupParent, cgroups.ScopeName(c.ID))
	return e, units, c
}

// TestPauseUnit: the pause's cgroup becomes a unit once the pause runs,
// and its unit, and those of the parents the pod made, are stopped after
// their cgroups are removed.
func TestPauseUnit(t *testing.T) {
	e, units, c := unitEnv(t)
	ctx := context.Background()
	p, err := e.m.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if p.Cgroup != c.Cgroup {
		t.Errorf("pod cgroup %q, want %q", p.Cgroup, c.Cgroup)
	}
	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"adopt " + c.Cgroup + " 4242 false", "release " + c.Cgroup, "release " + c.CgroupParent, "release " + e.parent}
	if diff := cmp.Diff(want, units.calls); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	if cgroupExists(c.Cgroup) || cgroupExists(c.CgroupParent) {
		t.Errorf("cgroups of the pod left")
	}
}

// TestPauseUnitRefused: a unit systemd would not make fails the pod, and
// nothing is left: the pause is stopped, its cgroup and unit removed.
func TestPauseUnitRefused(t *testing.T) {
	e, units, c := unitEnv(t)
	units.adoptErr = errors.New("systemd's job ended \"failed\"")
	if _, err := e.m.Run(context.Background(), c); err == nil {
		t.Fatal("Run succeeded")
	}
	e.checkGone(t, c.ID)
	if !slices.Contains(units.calls, "release "+c.Cgroup) || cgroupExists(c.Cgroup) {
		t.Errorf("units %q: want the pause's released and its cgroup gone", units.calls)
	}
}

func TestPodCgroupOutsideParent(t *testing.T) {
	c := Config{ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Name: "a", Namespace: "b", UID: "c",
		CgroupParent: "/kubepods.slice", Cgroup: "/other.slice/crib-x.scope"}
	if _, err := c.validate(); err == nil {
		t.Error("a pod cgroup outside its parent was accepted")
	}
}

// TestRemoveLeavesUsedParent: a parent the pod made that someone else
// has used since (logind's sessions in a user-<uid>.slice made before the
// user logged in) is left as it is when the pod goes: its processes are
// not killed and its unit is not stopped.
func TestRemoveLeavesUsedParent(t *testing.T) {
	e, units, c := unitEnv(t)
	ctx := context.Background()
	p, err := e.m.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.CreatedCgroups, e.parent) {
		t.Fatalf("created cgroups %q, want %s among them", p.CreatedCgroups, e.parent)
	}
	session := e.parent + "/session-1.scope"
	if err := e.cg.Create(session, nil); err != nil {
		t.Fatal(err)
	}
	sleep := cgroupstest.SleepIn(t, e.cg, session)
	if err := e.m.Remove(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"adopt " + c.Cgroup + " 4242 false", "release " + c.Cgroup, "release " + c.CgroupParent}
	if diff := cmp.Diff(want, units.calls); diff != "" {
		t.Errorf("units (-want +got):\n%s", diff)
	}
	if cgroupExists(c.CgroupParent) || !cgroupExists(session) {
		t.Errorf("want the pod's own parent gone and %s kept", session)
	}
	if !cgroupstest.InCgroup(sleep.Process.Pid, session) {
		t.Errorf("the process in %s was killed or moved", session)
	}
}

// TestForeignParentSliceRefused: a missing parent the units refuse to let
// crib make (a slice another manager fills) fails the pod before anything
// is made.
func TestForeignParentSliceRefused(t *testing.T) {
	e, units, c := unitEnv(t)
	units.foreign = []string{e.parent}
	_, err := e.m.Run(context.Background(), c)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Run = %v, want FailedPrecondition", err)
	}
	e.checkGone(t, c.ID)
	if cgroupExists(e.parent) || len(units.calls) != 0 {
		t.Errorf("units %q, parent made %v: want nothing", units.calls, cgroupExists(e.parent))
	}
}
