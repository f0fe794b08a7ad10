package runtime

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
)

// TestShimGoneStatusKills: a container whose shim was killed is reported
// exited (reason Unknown) by Status and List, and what it left running is
// killed through its cgroup then, not only at Stop: the fault injection
// test (test/faults) found containers reported exited whose processes ran
// on, which the kubelet would have restarted beside them.
func TestShimGoneStatusKills(t *testing.T) {
	ctx := context.Background()
	m, cg, c := shimGoneWorld(t)

	st, err := m.Status(ctx, c.ID)
	if err != nil || st.Status != StatusExited || st.Reason != "Unknown" {
		t.Fatalf("Status = %+v, %v; want exited, reason Unknown", st, err)
	}
	if !slices.Equal(cg.killed, []string{c.Cgroup}) {
		t.Fatalf("Status killed %v, want %s", cg.killed, c.Cgroup)
	}
	list, err := m.List(ctx)
	if err != nil || len(list) != 1 || list[0].Status != StatusExited {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if !slices.Equal(cg.killed, []string{c.Cgroup, c.Cgroup}) {
		t.Fatalf("List killed %v, want %s again", cg.killed, c.Cgroup)
	}
}

// TestRemoveUnknownToShimRemovesCgroup: a container its shim does not know
// (a Create the daemon's kill cut short, in the shim, after it had made
// the cgroup) has its cgroup removed with it. The fault test (test/faults)
// found such a cgroup left below a removed pod after 50 daemon kills.
func TestRemoveUnknownToShimRemovesCgroup(t *testing.T) {
	shim := newFakeShim()
	shim.deleteErr = fmt.Errorf("container: %w", errdefs.ErrNotFound) // as the shim answers for one it does not know
	m, cg, c := cgroupWorld(t, shims{"pod": shim})
	if _, err := m.Remove(context.Background(), c.ID); err != nil {
		t.Fatal(err)
	}
	m.Drain()
	if !slices.Equal(cg.freed, []string{c.Cgroup}) {
		t.Fatalf("removed cgroups %v, want %s", cg.freed, c.Cgroup)
	}
}
