package shim_test

import (
	"context"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/runtime/shim"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// TestOOMKilledInScope: under the systemd driver the container's cgroup is
// a scope, which systemd removes about a millisecond after its last
// process is gone, before the shim has reaped the init; the OOM kill is
// still reported (heard as it happened). Here the test plays systemd.
func TestOOMKilledInScope(t *testing.T) {
	p := newPod(t)
	id := randomID()
	slice := "/cribshimtest" + randomID()[:8] + ".slice"
	if err := p.cg.Create(slice, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cg.Remove(slice) })
	scope := slice + "/" + cgroups.ScopeName(id)
	spec := p.spec(id, "/bin/sh", "-c", `x=.........................................; while :; do x="$x$x"; done`)
	spec.Linux.CgroupsPath = scope
	limit := int64(16 << 20)
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	p.create(id, spec)
	pruned := make(chan struct{})
	go func() { // systemd: the cgroup goes as soon as it is empty
		defer close(pruned)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if st, err := p.cg.Stats(scope); err == nil && st.Pids.Current == 0 {
				_ = p.cg.Remove(scope)
				return
			}
		}
	}()
	if _, err := p.client.Start(context.Background(), &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	st := p.wait(id)
	<-pruned
	if st.Reason != shim.ReasonOOMKilled || st.ExitCode != 137 {
		t.Fatalf("state %v, want OOMKilled with 137", st)
	}
}
