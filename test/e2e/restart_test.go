package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/sandbox/nsfs"
	"github.com/crib-runtime/crib/test/harness"
)

// TestDaemonKilledPodsLive SIGKILLs the daemon with a pod running: after a
// restart the pod is still ready, a running container still runs and logs,
// and one that exited while the daemon was down reports its real exit code.
func TestDaemonKilledPodsLive(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("survivor", criapi.NamespaceMode_CONTAINER)
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	ticker := w.container(t, podID, pod, "ticker", "sh", "-c", "while :; do echo tick; sleep 0.1; done")
	short := w.container(t, podID, pod, "short", "sh", "-c", "sleep 1; exit 7")
	// Created, not started: only the daemon's record knows it.
	later, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "later"}, Image: &criapi.ImageSpec{Image: w.image},
		Command: []string{"sleep", "3600"}}, pod)
	if err != nil {
		t.Fatal(err)
	}
	w.d.Kill()
	time.Sleep(1500 * time.Millisecond) // "short" exits while no daemon runs
	logPath := filepath.Join(pod.LogDirectory, "ticker.log")
	before, _ := os.ReadFile(logPath)

	w.d = w.e.Start()
	w.c = w.d.Clients()
	pods, err := w.c.Runtime.ListPodSandbox(ctx, &criapi.PodSandboxFilter{Id: podID})
	if err != nil || len(pods) != 1 || pods[0].State != criapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after restart: %v, %v", pods, err)
	}
	cs, err := w.c.Runtime.ContainerStatus(ctx, ticker, false)
	if err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("ticker after restart: %v, %v", cs, err)
	}
	cs, err = w.c.Runtime.ContainerStatus(ctx, short, false)
	if err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_EXITED || cs.Status.ExitCode != 7 || cs.Status.Reason != "Error" {
		t.Fatalf("short after restart: %v, %v", cs, err)
	}
	cs, err = w.c.Runtime.ContainerStatus(ctx, later, false)
	if err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("created container after restart: %v, %v", cs, err)
	}
	if err := w.c.Runtime.StartContainer(ctx, later); err != nil {
		t.Fatalf("start after restart: %v", err)
	}
	if cs, err = w.c.Runtime.ContainerStatus(ctx, later, false); err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("started after restart: %v, %v", cs, err)
	}
	// The log kept growing across the restart.
	waitFor(t, func() bool {
		after, _ := os.ReadFile(logPath)
		return len(after) > len(before) && strings.HasSuffix(string(after), " stdout F tick\n")
	}, "the ticker's log to grow after the restart")
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if list, _ := w.c.Runtime.ListContainers(ctx, nil); len(list) != 0 {
		t.Fatalf("containers left: %v", list)
	}
}

func TestOOMKilledReason(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "oom", criapi.NamespaceMode_CONTAINER)
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "hog"},
		Image:    &criapi.ImageSpec{Image: w.image},
		// Doubles a shell variable until the 16 MiB limit kills it.
		Command: []string{"sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done"},
		Linux:   &criapi.LinuxContainerConfig{Resources: &criapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20}},
	}, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		cs, err := w.c.Runtime.ContainerStatus(ctx, id, false)
		return err == nil && cs.Status.State == criapi.ContainerState_CONTAINER_EXITED
	}, "the hog to be killed")
	cs, _ := w.c.Runtime.ContainerStatus(ctx, id, false)
	if cs.Status.Reason != "OOMKilled" || cs.Status.ExitCode != 137 {
		t.Fatalf("hog: reason %q exit %d, want OOMKilled 137", cs.Status.Reason, cs.Status.ExitCode)
	}
}

// TestRebootLeavesPodsNotReady: after a reboot (state dir gone, shims and
// containers dead) pods are NotReady, containers exited with reason
// Unknown, and all of them can be removed.
func TestRebootLeavesPodsNotReady(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("rebooted", criapi.NamespaceMode_POD)
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	id := w.container(t, podID, pod, "sleeper", "sleep", "3600")
	w.d.Kill()
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Kill(w.cgroup); err != nil { // the power goes: every process in the pod dies
		t.Fatal(err)
	}
	w.e.Reboot()
	w.d = w.e.Start()
	w.c = w.d.Clients()
	st, err := w.c.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil || st.Status.State != criapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("pod after reboot: %v, %v", st, err)
	}
	cs, err := w.c.Runtime.ContainerStatus(ctx, id, false)
	if err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_EXITED || cs.Status.Reason != "Unknown" {
		t.Fatalf("container after reboot: %v, %v", cs, err)
	}
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if pods, _ := w.c.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Fatalf("pods left: %v", pods)
	}
	if list, _ := w.c.Runtime.ListContainers(ctx, nil); len(list) != 0 {
		t.Fatalf("containers left: %v", list)
	}
}

// TestContainerEvents follows one container through the events stream the
// kubelet's evented PLEG reads: created, started, stopped (it exits by
// itself), deleted, each with its pod's status.
func TestContainerEvents(t *testing.T) {
	w := newPodWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pod, podID := w.runPod(t, "events", criapi.NamespaceMode_CONTAINER)
	stream, err := w.c.RawRt.GetContainerEvents(ctx, &criapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the subscription reach the daemon
	id := w.container(t, podID, pod, "brief", "sh", "-c", "sleep 0.3")
	waitFor(t, func() bool {
		cs, err := w.c.Runtime.ContainerStatus(ctx, id, false)
		return err == nil && cs.Status.State == criapi.ContainerState_CONTAINER_EXITED
	}, "the container to exit")
	if err := w.c.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	want := []criapi.ContainerEventType{criapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		criapi.ContainerEventType_CONTAINER_STARTED_EVENT, criapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
		criapi.ContainerEventType_CONTAINER_DELETED_EVENT}
	for _, typ := range want {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ContainerId != id || ev.ContainerEventType != typ || ev.PodSandboxStatus.GetId() != podID {
			t.Fatalf("event %v for %s (pod %s), want %v for %s", ev.ContainerEventType, ev.ContainerId, ev.PodSandboxStatus.GetId(), typ, id)
		}
		if typ == criapi.ContainerEventType_CONTAINER_STOPPED_EVENT &&
			(len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].State != criapi.ContainerState_CONTAINER_EXITED) {
			t.Fatalf("stopped event statuses %v", ev.ContainersStatuses)
		}
	}
}

// TestHostPort reaches a container's port through the pod's hostPort, which
// the CNI portmap plugin maps on the (test namespace's) host side.
func TestHostPort(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("hostport", criapi.NamespaceMode_CONTAINER)
	pod.PortMappings = []*criapi.PortMapping{{Protocol: criapi.Protocol_TCP, ContainerPort: 80, HostPort: 18080}}
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.c.Runtime.StopPodSandbox(ctx, podID); _ = w.c.Runtime.RemovePodSandbox(ctx, podID) })
	w.container(t, podID, pod, "web", "sh", "-c", "mkdir -p /www && echo via-hostport > /www/index.html && exec httpd -f -p 80 -h /www")
	st, err := w.c.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil {
		t.Fatal(err)
	}
	// The node's address on the pod network: the bridge's, the subnet's .1.
	ip := st.Status.Network.Ip
	gw := ip[:strings.LastIndex(ip, ".")] + ".1"
	var body string
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("ip", "netns", "exec", w.e.Netns, "iptables", "-t", "nat", "-S").CombinedOutput()
			t.Logf("nat rules:\n%s", out)
			out, _ = exec.Command("ip", "-n", w.e.Netns, "addr").CombinedOutput()
			t.Logf("addrs:\n%s", out)
		}
	})
	waitFor(t, func() bool {
		// The socket is made on a thread inside the test's network
		// namespace (an http.Client would dial from another goroutine).
		_ = nsfs.Do("/run/netns/"+w.e.Netns, nsfs.Net, func() error {
			conn, err := net.DialTimeout("tcp", gw+":18080", time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
				return err
			}
			b, err := io.ReadAll(conn)
			body = string(b)
			return err
		})
		return strings.HasSuffix(body, "\r\n\r\nvia-hostport\n")
	}, "the page through hostPort 18080")
}

// TestCNIFailureLeavesNothing: a CNI plugin that fails makes RunPodSandbox
// fail with the plugin's own message, and nothing of the pod stays: no
// record, pin, mount, cgroup, shim or veth.
func TestCNIFailureLeavesNothing(t *testing.T) {
	e := harness.NewEnv(t)
	e.WithNetwork("10.88.250.0/24")
	e.CNIBin = filepath.Join(e.Dir, "cni-bin")
	if err := os.MkdirAll(e.CNIBin, 0o755); err != nil {
		t.Fatal(err)
	}
	plugin := "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"crib-e2e plugin says no\"}'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(e.CNIBin, "crib-e2e-fail"), []byte(plugin), 0o755); err != nil {
		t.Fatal(err)
	}
	// Lexically first, so it is the network the daemon uses.
	conf := `{"cniVersion":"1.0.0","name":"failing","plugins":[{"type":"crib-e2e-fail"}]}`
	if err := os.WriteFile(filepath.Join(e.CNIConf, "05-failing.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.WriteConfig("")
	c := e.Start().Clients()
	ctx := context.Background()
	parent := fmt.Sprintf("/crib-e2e-cni-%d", time.Now().UnixNano())
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Remove(parent) })
	_, err = c.Runtime.RunPodSandbox(ctx, &criapi.PodSandboxConfig{
		Metadata: &criapi.PodSandboxMetadata{Name: "nonet", Namespace: "e2e", Uid: "u1"},
		Linux:    &criapi.LinuxPodSandboxConfig{CgroupParent: parent + "/podu1"},
	}, "")
	harness.MustContain(t, fmt.Sprint(err), "crib-e2e plugin says no")
	if pods, _ := c.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Errorf("pods after a failed run: %v", pods)
	}
	// (The daemon's sealed binary under state/bin is its own, for its life.)
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), e.State+"/pods/") {
		t.Errorf("pod mounts left under %s", e.State)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.State, "pods")); len(entries) != 0 {
		t.Errorf("%s holds %d entries", filepath.Join(e.State, "pods"), len(entries))
	}
	// The shim process started for the pod is kept for the next one; no
	// directory of the pod's is left.
	if entries, _ := os.ReadDir(filepath.Join(e.State, "shims")); len(entries) > 1 || len(entries) == 1 && !strings.HasPrefix(entries[0].Name(), "grp-") {
		t.Errorf("%s holds %v, want at most the kept shim process's directory", filepath.Join(e.State, "shims"), entries)
	}
	if _, err := cg.Stats(parent); err == nil {
		t.Errorf("cgroup parent %s left behind", parent)
	}
	links, _ := exec.Command("ip", "-n", e.Netns, "-o", "link").CombinedOutput()
	if strings.Contains(string(links), "veth") {
		t.Errorf("veth left in the test namespace:\n%s", links)
	}
}
