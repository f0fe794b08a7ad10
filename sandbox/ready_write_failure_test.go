package sandbox

import (
	"context"
	"os"
	"testing"
)

// TestReadyWriteFailureRollsBackAsCreating: when the last step, the
// record's move to READY, cannot be written (a full disk), the rollback's
// BeforeTeardown sees the pod still CREATING. The shim's rollback stops
// only a pod being made (a Stop keeps the shim for the exit codes), so a
// pod seen READY there kept its shim running after its record was gone:
// the fault injection test (test/faults) found that shim left over.
func TestReadyWriteFailureRollsBackAsCreating(t *testing.T) {
	e := newEnv(t)
	dir := e.m.Store.dir
	e.m.failAfter = func(step string) error {
		if step == "files" { // the record can no longer be written
			return os.Rename(dir, dir+".away")
		}
		return nil
	}
	c := e.config(t)
	_, err := e.m.Run(context.Background(), c)
	if rerr := os.Rename(dir+".away", dir); rerr != nil {
		t.Fatal(rerr)
	}
	e.m.failAfter = nil
	if err == nil {
		t.Fatal("Run succeeded without writing its record")
	}
	if got, ok := e.hooks.tornDownAs[c.ID]; !ok || got != StateCreating {
		t.Fatalf("the rollback tore the pod down as %v (called: %v), want %v", got, ok, StateCreating)
	}
}
