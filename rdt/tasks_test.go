package rdt

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func u64(v uint64) *uint64 { return &v }

func TestPlace(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	c := h.open(t, writeClassFile(t, "partitions: {p: {classes: {gold: }}}"))
	mustPlace(t, c, "gold", "ctr", 10)
	mustPlace(t, c, RootClass, "ctr2", 11)
	if pids, _ := h.group(t, "crib-gold"); !cmp.Equal(pids, []int{10}) {
		t.Errorf("gold tasks %v, want [10]", pids)
	}
	if pids, _ := h.group(t, ""); !cmp.Equal(pids, []int{11}) {
		t.Errorf("root tasks %v, want [11]", pids)
	}
	if h.exists("crib-gold/mon_groups") {
		t.Error("monitoring group made on a host without monitoring")
	}
	if w, err := c.Place("", "ctr", 12); w != nil || err != nil {
		t.Errorf("Place with no class = %v, %v; want a no-op", w, err)
	}
	if _, err := c.Place("tin", "ctr", 12); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown class: %v, want InvalidArgument", err)
	}
	if _, err := c.Place("gold", "ctr", 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("pid 0: %v, want InvalidArgument", err)
	}
	if err := c.RemoveMonGroup("gold", "ctr"); err != nil {
		t.Errorf("RemoveMonGroup without monitoring: %v", err)
	}
	if _, err := c.MonStats("gold", "ctr"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("MonStats without monitoring: %v, want FailedPrecondition", err)
	}
}

// Monitoring groups per container: made on Place, read for stats, removed
// idempotently; a full RMID table is a warning, never a failed placement.
func TestMonitoringGroups(t *testing.T) {
	h := newFakeHost(t, fullHost())
	c := h.open(t, writeClassFile(t, "partitions: {p: {classes: {gold: }}}"))
	if err := c.CreateMonGroup("gold", "ctr"); err != nil {
		t.Fatal(err)
	}
	mustPlace(t, c, "gold", "ctr", 10)
	mustPlace(t, c, "gold", "ctr", 11) // an exec'd process joins the same group
	if pids, _ := h.group(t, "crib-gold/mon_groups/ctr"); !cmp.Equal(pids, []int{10, 11}) {
		t.Errorf("monitoring group tasks %v, want [10 11]", pids)
	}
	mustPlace(t, c, RootClass, "rootctr", 20)
	if !h.exists("mon_groups/rootctr") {
		t.Error("no monitoring group under the root for a root-class container")
	}

	st, err := c.MonStats("gold", "ctr")
	if err != nil {
		t.Fatal(err)
	}
	want := &MonStats{Domains: []MonDomain{
		{ID: 0, LLCOccupancy: u64(1000), MBMLocalBytes: u64(1001), MBMTotalBytes: u64(1002)},
		{ID: 1, LLCOccupancy: u64(2000), MBMTotalBytes: u64(2002)}, // local: "Unavailable"
	}}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("MonStats (-want +got):\n%s", diff)
	}

	for i := 0; i < 2; i++ {
		if err := c.RemoveMonGroup("gold", "ctr"); err != nil {
			t.Errorf("RemoveMonGroup #%d: %v", i+1, err)
		}
	}
	if h.exists("crib-gold/mon_groups/ctr") {
		t.Error("monitoring group still there")
	}
	if pids, _ := h.group(t, "crib-gold"); !cmp.Equal(pids, []int{10, 11}) {
		t.Errorf("class tasks %v after removing the monitoring group, want [10 11]", pids)
	}
	if _, err := c.MonStats("gold", "ctr"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("MonStats of a removed group: %v, want NotFound", err)
	}
	if err := c.CreateMonGroup("gold", "../x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("container id with '..': %v, want InvalidArgument", err)
	}

	// Use up the RMIDs: the pid is still placed in its class.
	for i := 0; h.rmidsUsed() < h.spec.mon.NumRMIDs; i++ {
		if err := h.Mkdir("crib-gold/mon_groups/filler" + string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	warn, err := c.Place("gold", "late", 30)
	if err != nil || !errors.Is(warn, syscall.ENOSPC) || !strings.Contains(warn.Error(), "Out of RMIDs") {
		t.Errorf("Place with no RMID left = %v, %v; want a warning with the kernel's reason", warn, err)
	}
	if pids, _ := h.group(t, "crib-gold"); !cmp.Equal(pids, []int{10, 11, 30}) {
		t.Errorf("class tasks %v, want pid 30 placed anyway", pids)
	}
}

// The kernel's answer to a bad pid comes back with its reason.
func TestPlaceKernelError(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	c := h.open(t, Config{})
	c.fs = rejectTasks{h}
	_, err := c.Place(RootClass, "", 99)
	if !errors.Is(err, syscall.ESRCH) || !strings.Contains(err.Error(), "No task 99") || !strings.Contains(err.Error(), "place pid 99 in rdt class "+RootClass) {
		t.Errorf("got %v", err)
	}
}

// rejectTasks answers every tasks write as the kernel does for a pid that
// has exited.
type rejectTasks struct{ *fakeHost }

func (r rejectTasks) WriteFile(name string, data []byte) error {
	if strings.HasSuffix(name, "tasks") {
		return r.fail("write", name, syscall.ESRCH, "No task "+string(data))
	}
	return r.fakeHost.WriteFile(name, data)
}

var _ fsys = rejectTasks{}
