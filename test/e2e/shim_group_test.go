package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// TestShimGroups runs pods two to a shim process ([shim] pods_per_shim =
// 2): pods share processes as they come; a daemon killed with -9 leaves
// them all running, an exit meanwhile is not lost, and the restarted
// daemon counts the processes again, so the next pod fills the one with
// room; a shim process killed ends the containers of exactly the pods it
// served (the blast radius), whose containers report exited and pods
// NotReady; the others run on. Removing every pod ends every process but
// one, kept for the next pod, and leaves no other shim directory.
func TestShimGroups(t *testing.T) {
	w := newPodWorldWith(t, func(e *harness.Env) { e.WriteConfig("[shim]\npods_per_shim = 2\n") })
	ctx := context.Background()
	type runPod struct {
		id, ctr string
		cfg     *criapi.PodSandboxConfig
	}
	var pods []runPod
	start := func(name string, cmd ...string) runPod {
		cfg := w.podConfig(name, criapi.NamespaceMode_CONTAINER)
		id := w.run(t, cfg)
		p := runPod{id: id, cfg: cfg, ctr: w.container(t, id, cfg, name, cmd...)}
		pods = append(pods, p)
		return p
	}
	a := start("a", "sleep", "3600")
	b := start("b", "sh", "-c", "sleep 2; exit 7")
	c := start("c", "sleep", "3600")
	shimAB, shimC := harness.ShimPid(t, a.id), harness.ShimPid(t, c.id)
	if harness.ShimPid(t, b.id) != shimAB || shimC == shimAB {
		t.Fatalf("shims of pods a, b, c: %d, %d, %d: want a and b in one, c in another",
			shimAB, harness.ShimPid(t, b.id), shimC)
	}

	w.d.Kill()
	time.Sleep(2500 * time.Millisecond) // b's container exits while no daemon runs
	w.d = w.e.Start()
	w.c = w.d.Clients()
	w.wantState(t, a.ctr, criapi.ContainerState_CONTAINER_RUNNING, 0)
	w.wantState(t, b.ctr, criapi.ContainerState_CONTAINER_EXITED, 7)
	d := start("d", "sleep", "3600")
	if got := harness.ShimPid(t, d.id); got != shimC {
		t.Errorf("pod d after the restart went to shim %d, want %d (pod c's, which had room)", got, shimC)
	}

	if err := unix.Kill(shimAB, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return unix.Kill(shimAB, 0) != nil }, "the shim's exit")
	for _, p := range []runPod{a, b} {
		waitFor(t, func() bool {
			st, err := w.c.Runtime.PodSandboxStatus(ctx, p.id, false)
			return err == nil && st.Status.State == criapi.PodSandboxState_SANDBOX_NOTREADY
		}, "pod "+p.cfg.Metadata.Name+" NotReady after its shim died")
	}
	w.wantState(t, a.ctr, criapi.ContainerState_CONTAINER_EXITED, -1)
	for _, p := range []runPod{c, d} {
		w.wantState(t, p.ctr, criapi.ContainerState_CONTAINER_RUNNING, 0)
		st, err := w.c.Runtime.PodSandboxStatus(ctx, p.id, false)
		if err != nil || st.Status.State != criapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod %s, beside the killed shim: %v, %v", p.cfg.Metadata.Name, st, err)
		}
	}
	// A new pod never goes to the dead process.
	e := start("e", "sleep", "3600")
	shimE := harness.ShimPid(t, e.id)
	if shimE == shimAB || shimE == shimC {
		t.Errorf("pod e went to shim %d, want a new one", shimE)
	}

	for _, p := range pods {
		if err := w.c.Runtime.StopPodSandbox(ctx, p.id); err != nil {
			t.Fatal(err)
		}
		if err := w.c.Runtime.RemovePodSandbox(ctx, p.id); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []runPod{c, e} {
		if pid := harness.FindShim(p.id); pid != 0 {
			t.Errorf("pod %s still served by %d after its removal", p.cfg.Metadata.Name, pid)
		}
	}
	// c's process ended with its last pod, as e's had room; e's, the last
	// one, is kept for the next pod, serving none.
	waitFor(t, func() bool { return unix.Kill(shimC, 0) != nil }, "the exit of pod c's shim")
	if unix.Kill(shimE, 0) != nil {
		t.Error("the last shim process ended: none is kept for the next pod")
	}
	left, _ := os.ReadDir(filepath.Join(w.e.State, "shims"))
	var names []string
	for _, l := range left {
		names = append(names, l.Name())
	}
	if len(names) != 1 || !strings.HasPrefix(names[0], "grp-") {
		t.Errorf("shim directories left: %s; want the kept process's alone", strings.Join(names, " "))
	}
}

// wantState checks a container's state and, for exit >= 0, its exit code.
func (w *podWorld) wantState(t *testing.T, id string, state criapi.ContainerState, exit int32) {
	t.Helper()
	cs, err := w.c.Runtime.ContainerStatus(context.Background(), id, false)
	if err != nil || cs.Status.State != state || (exit >= 0 && cs.Status.ExitCode != exit) {
		t.Errorf("container %s: %v, %v; want %v, exit %d", id, cs.GetStatus(), err, state, exit)
	}
}
