package manager_test

import (
	"fmt"
	"sync"
	"testing"
)

// A container's cgroup goes when its init exits (the shim removes it) while a
// StopContainer may be killing it: the kill must find nothing left to kill,
// not fail on the files vanishing under it (critest's image id spec removed
// a container whose shell had just exited and got "read .../cgroup.procs: no
// such file or directory").
func TestKillWhileRemoved(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	for i := range 150 {
		cg := fmt.Sprintf("%s/c%d", root, i)
		if err := m.Create(cg, nil); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var killErr, removeErr error
		wg.Go(func() { killErr = m.Kill(cg) })
		wg.Go(func() { removeErr = m.Remove(cg) })
		wg.Wait()
		if removeErr != nil {
			t.Fatalf("remove %s: %v", cg, removeErr)
		}
		if killErr != nil {
			t.Fatalf("kill %s while it was removed (round %d): %v", cg, i, killErr)
		}
	}
}
