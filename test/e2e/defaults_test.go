package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodWithoutCgroupParent runs what crictl sends by default: a pod whose
// linux section names no cgroup parent. Its pod and containers go under the
// daemon's cgroup_root, which is removed with the last pod.
func TestPodWithoutCgroupParent(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("noparent", criapi.NamespaceMode_CONTAINER)
	pod.Linux.CgroupParent = ""
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	id := w.container(t, podID, pod, "sleeper", "sleep", "3600")
	b, err := os.ReadFile("/sys/fs/cgroup/memory" + w.e.CgroupRoot + "/" + id + "/cgroup.procs")
	if os.IsNotExist(err) { // a pure cgroup v2 host
		b, err = os.ReadFile("/sys/fs/cgroup" + w.e.CgroupRoot + "/" + id + "/cgroup.procs")
	}
	if err != nil || len(strings.Fields(string(b))) != 1 {
		t.Fatalf("the container's cgroup under cgroup_root %s: %q, %v", w.e.CgroupRoot, b, err)
	}
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", w.e.CgroupRoot)); !os.IsNotExist(err) {
		t.Errorf("cgroup_root %s left after its last pod: %v", w.e.CgroupRoot, err)
	}
}

// TestSharedPIDWithHostNamespaces: a pod that shares one pid namespace
// (a pause process) but uses the host's network, IPC and UTS namespaces.
func TestSharedPIDWithHostNamespaces(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("hostns", criapi.NamespaceMode_POD)
	pod.Hostname = ""
	pod.Linux.SecurityContext.NamespaceOptions.Network = criapi.NamespaceMode_NODE
	pod.Linux.SecurityContext.NamespaceOptions.Ipc = criapi.NamespaceMode_NODE
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.c.Runtime.StopPodSandbox(ctx, podID)
		_ = w.c.Runtime.RemovePodSandbox(ctx, podID)
	})
	w.container(t, podID, pod, "a", "sleep", "3600")
	b := w.container(t, podID, pod, "b", "sleep", "3601")
	// One pid namespace: b sees a's sleep; the host's network namespace:
	// the one the test made for the daemon.
	resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: b, Cmd: []string{"sh", "-c", "ps; readlink /proc/self/ns/net"}, Timeout: 10})
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+w.e.Netns, &st); err != nil {
		t.Fatal(err)
	}
	if err != nil || !strings.Contains(string(resp.Stdout), "sleep 3600") || !strings.Contains(string(resp.Stdout), fmt.Sprintf("net:[%d]", st.Ino)) {
		t.Fatalf("ps and network namespace in b (want net:[%d]): %q, %v", st.Ino, resp.GetStdout(), err)
	}
}
