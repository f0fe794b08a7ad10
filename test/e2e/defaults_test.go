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
	// The pod has a level of its own under cgroup_root, as the kubelet
	// gives each pod pod<uid>.
	dir := w.e.CgroupRoot + "/pod" + podID + "/" + id
	b, err := os.ReadFile("/sys/fs/cgroup/memory" + dir + "/cgroup.procs")
	if os.IsNotExist(err) { // a pure cgroup v2 host
		b, err = os.ReadFile("/sys/fs/cgroup" + dir + "/cgroup.procs")
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
	podID := w.run(t, pod)
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

// TestPrivilegedGetsTheRuntimesCapabilities: privileged and add [ALL]
// containers get every capability the daemon holds, which on this host (and
// in a kind node) is not every capability the kernel knows.
func TestPrivilegedGetsTheRuntimesCapabilities(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("priv", criapi.NamespaceMode_CONTAINER)
	pod.Linux.SecurityContext.Privileged = true
	podID := w.run(t, pod)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	want := capLine(string(status), "CapBnd")
	for name, sc := range map[string]*criapi.LinuxContainerSecurityContext{
		"privileged": {Privileged: true},
		"addall":     {Capabilities: &criapi.Capability{AddCapabilities: []string{"ALL"}}},
	} {
		id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"sleep", "3600"}, Linux: &criapi.LinuxContainerConfig{SecurityContext: sc},
		}, pod)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"cat", "/proc/self/status"}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := capLine(string(resp.Stdout), "CapEff"); got != want {
			t.Errorf("%s: CapEff %s, want the daemon's bounding set %s", name, got, want)
		}
	}
}

func capLine(status, key string) string {
	for line := range strings.SplitSeq(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestInterfaceSysctls: a pod's sysctls are written after CNI made its
// interfaces, so per-interface keys work (and apply to eth0 only).
func TestInterfaceSysctls(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("ifsysctl", criapi.NamespaceMode_CONTAINER)
	pod.Linux.Sysctls = map[string]string{"net.ipv4.conf.eth0.rp_filter": "2", "kernel.shm_rmid_forced": "1"}
	podID := w.run(t, pod)
	id := w.container(t, podID, pod, "reader", "sleep", "3600")
	resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: id,
		Cmd: []string{"cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter", "/proc/sys/kernel/shm_rmid_forced"}, Timeout: 10})
	if err != nil || string(resp.Stdout) != "2\n1\n" {
		t.Fatalf("sysctls in the pod: %q %q, %v", resp.GetStdout(), resp.GetStderr(), err)
	}
}
