package manager_test

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A container's cgroup goes when its init exits (the shim removes it) while a
// StopContainer may be killing it: the kill must find nothing left to kill,
// not fail on the files vanishing under it (critest's image id spec removed
// a container whose shell had just exited and got "read .../cgroup.procs: no
// such file or directory").
func TestKillWhileRemoved(t *testing.T) {
	m := openHost(t)
	root := testRoot(t, m)
	// Up to 150 rounds (the race showed within 140 every time on a v1
	// host), but no more than 15 s under an emulated guest.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; i < 150 && time.Now().Before(deadline); i++ {
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
