package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
)

// pidfdsOf opens pidfds on a container's init and its children: they name
// those processes, never a later one with a reused pid.
func pidfdsOf(t *testing.T, w *podWorld, id string) []int {
	t.Helper()
	st, err := w.c.Runtime.ContainerStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	init := infoPid(t, verboseInfo(t, st.Info))
	var children []string
	waitFor(t, func() bool { // the shell forks its child after the start
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/task/" + strconv.Itoa(init) + "/children")
		children = strings.Fields(string(b))
		return len(children) > 0
	}, "the container's child process")
	pids := []int{init}
	for _, f := range children {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	var fds []int
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", pid, err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		fds = append(fds, fd)
	}
	return fds
}

// exited reports whether the process behind a pidfd has exited: the pidfd
// polls readable then.
func exited(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 1
}

// TestShimKilledPodStillTornDown: a pod whose shim was killed with -9 is
// still stopped and removed whole. Its containers lived on after the shim
// (their cgroups are beside the pod's, under the kubelet's pod cgroup,
// which crib did not make), and StopPodSandbox + RemovePodSandbox used to
// leave them running. Afterwards no process, cgroup or mount of the pod is
// left.
func TestShimKilledPodStillTornDown(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("shimcrash", criapi.NamespaceMode_CONTAINER)
	// The kubelet makes a pod's cgroup parent before RunPodSandbox: crib
	// did not make it, so it does not remove (and kill) it.
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	parent := pod.GetLinux().GetCgroupParent()
	if err := cg.Create(parent, nil); err != nil {
		t.Fatal(err)
	}
	podID := w.run(t, pod)
	var ids []string
	var fds []int
	for _, name := range []string{"a", "b"} {
		id := w.container(t, podID, pod, name, "sh", "-c", "sleep 3600 & exec sleep 3600")
		ids = append(ids, id)
		fds = append(fds, pidfdsOf(t, w, id)...)
	}
	shim := harness.ShimPid(t, podID)
	shimFd, err := unix.PidfdOpen(shim, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(shimFd)
	if err := unix.PidfdSendSignal(shimFd, unix.SIGKILL, nil, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return exited(shimFd) }, "the shim's exit")

	if _, err := w.c.RawRt.StopPodSandbox(ctx, &criapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("stop the pod after its shim died: %v", err)
	}
	if _, err := w.c.RawRt.RemovePodSandbox(ctx, &criapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("remove the pod after its shim died: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, fd := range fds {
		for !exited(fd) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !exited(fd) {
			t.Errorf("process %d of the pod's containers outlived the pod", i)
		}
	}
	for _, path := range append([]string{parent + "/" + podID}, parent+"/"+ids[0], parent+"/"+ids[1]) {
		if _, err := cg.Stats(path); err == nil {
			t.Errorf("cgroup %s outlived the pod", path)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, needle := range append([]string{podID}, ids...) {
		if strings.Contains(string(mounts), needle) {
			t.Errorf("a mount naming %s outlived the pod", needle)
		}
	}
	if _, err := os.Stat(filepath.Join(w.e.State, "shims", podID[:16])); err == nil {
		t.Errorf("the dead shim's directory outlived the pod")
	}
	if pods, _ := w.c.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Errorf("pods after removal: %v", pods)
	}
	if ctrs, _ := w.c.Runtime.ListContainers(ctx, nil); len(ctrs) != 0 {
		t.Errorf("containers after removal: %v", ctrs)
	}
}
