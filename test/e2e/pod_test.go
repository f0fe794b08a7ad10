package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// podWorld is a daemon in its own network namespace with a busybox image pulled.
type podWorld struct {
	e      *harness.Env
	d      *harness.Daemon
	c      harness.Clients
	image  string
	logDir string
	cgroup string
	// reg serves the images; regHost is its address as the daemon reaches it.
	reg     *testregistry.Registry
	regHost string
}

func newPodWorld(t *testing.T) *podWorld {
	t.Helper()
	return newPodWorldWith(t, nil)
}

// newPodWorldWith is newPodWorld with configure run on the env (its
// network set) before the daemon starts: a test's own config.
func newPodWorldWith(t *testing.T, configure func(e *harness.Env)) *podWorld {
	t.Helper()
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "e2e/busybox:1", testregistry.Busybox(t, ""))
	var regHost string
	w := startPodWorld(t, func(e *harness.Env) {
		if configure != nil {
			configure(e)
		}
		// The daemon lives in the test's network namespace: it pulls from there.
		regHost = reg.ListenIn(t, "/run/netns/"+e.Netns)
	})
	w.reg, w.regHost, w.image = reg, regHost, strings.Replace(ref, reg.Host, regHost, 1)
	if _, err := w.c.Images.PullImage(context.Background(), &criapi.ImageSpec{Image: w.image}, nil, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// startPodWorld starts a daemon in a network namespace of its own, with
// configure run on its env before, and no image.
func startPodWorld(t *testing.T, configure func(e *harness.Env)) *podWorld {
	t.Helper()
	e := harness.NewEnv(t)
	e.WithNetwork(fmt.Sprintf("10.88.%d.0/24", rand.IntN(200)+20))
	if configure != nil {
		configure(e)
	}
	w := &podWorld{e: e, d: e.Start(), logDir: filepath.Join(e.Dir, "logs"), cgroup: fmt.Sprintf("/crib-e2e-%d", rand.Int64())}
	w.c = w.d.Clients()
	// Whatever a failed test leaves running in its pods goes with their
	// cgroups (the test owns w.cgroup).
	t.Cleanup(func() {
		cg, err := manager.Open("/proc/self/mountinfo")
		if err == nil {
			err = cg.Remove(w.cgroup)
		}
		if err != nil {
			t.Errorf("remove the test's cgroups: %v", err)
		}
	})
	return w
}

func (w *podWorld) podConfig(name string, pid criapi.NamespaceMode) *criapi.PodSandboxConfig {
	uid := fmt.Sprintf("%x", rand.Int64())
	return &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: name, Namespace: "e2e", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(w.logDir, uid),
		DnsConfig:    &criapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"e2e.svc.cluster.local"}},
		Labels:       map[string]string{"app": name},
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: w.cgroup + "/pod" + uid,
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &criapi.NamespaceOption{Pid: pid},
			},
		},
	}
}

// runPod runs a pod that the test's cleanup stops and removes.
func (w *podWorld) runPod(t *testing.T, name string, pid criapi.NamespaceMode) (*criapi.PodSandboxConfig, string) {
	t.Helper()
	pod := w.podConfig(name, pid)
	return pod, w.run(t, pod)
}

// run runs the pod config (one the test changed from podConfig's) and has
// the test's cleanup stop and remove it.
func (w *podWorld) run(t *testing.T, pod *criapi.PodSandboxConfig) string {
	t.Helper()
	podID, err := w.c.Runtime.RunPodSandbox(context.Background(), pod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.c.Runtime.StopPodSandbox(context.Background(), podID)
		_ = w.c.Runtime.RemovePodSandbox(context.Background(), podID)
	})
	return podID
}

func (w *podWorld) container(t *testing.T, podID string, pod *criapi.PodSandboxConfig, name string, cmd ...string) string {
	t.Helper()
	ctx := context.Background()
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: name},
		Image:    &criapi.ImageSpec{Image: w.image},
		Command:  cmd,
		LogPath:  name + ".log",
		Labels:   map[string]string{"container": name},
	}, pod)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return id
}

// startSleeper creates and starts a container of pod from cfg, with name,
// the test image and `sleep 3600` filled in.
func (w *podWorld) startSleeper(t *testing.T, podID string, pod *criapi.PodSandboxConfig, name string, cfg *criapi.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	cfg.Metadata = &criapi.ContainerMetadata{Name: name}
	cfg.Image = &criapi.ImageSpec{Image: w.image}
	cfg.Command = []string{"sleep", "3600"}
	id, err := w.c.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return id
}

// probe runs a shell script that prints "<probe> <outcome>" lines in
// container id and returns them as a map.
func (w *podWorld) probe(t *testing.T, id, name, script string) map[string]string {
	t.Helper()
	resp, err := w.c.RawRt.ExecSync(context.Background(), &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", script}, Timeout: 20})
	if err != nil || resp.ExitCode != 0 {
		t.Fatalf("%s: probe: %v, exit %d, %s%s", name, err, resp.GetExitCode(), resp.GetStdout(), resp.GetStderr())
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(resp.Stdout)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		out[k] = v
	}
	t.Logf("%s:\n%s", name, resp.Stdout)
	return out
}

func TestPodWithTwoContainers(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod := w.podConfig("web", criapi.NamespaceMode_POD)
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.c.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil || st.Status.State != criapi.PodSandboxState_SANDBOX_READY || st.Status.Network.GetIp() == "" {
		t.Fatalf("pod status %v, %v", st, err)
	}
	server := w.container(t, podID, pod, "server", "sh", "-c", "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 80 -h /www")
	client := w.container(t, podID, pod, "client", "sh", "-c", "for i in $(seq 50); do wget -q -O - http://127.0.0.1/ && break; sleep 0.1; done; exec sleep 3600")

	// The two share the pod's network: the client reaches the server on loopback.
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"server.log", "client.log"} {
				b, _ := os.ReadFile(filepath.Join(pod.LogDirectory, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(pod.LogDirectory, "client.log"))
		return strings.Contains(string(b), " stdout F hello-from-httpd")
	}, "the client's log line from the server")
	// ExecSync keeps stdout and stderr apart and reports the exit code.
	resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: client,
		Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Timeout: 10})
	if err != nil || string(resp.Stdout) != "out\n" || string(resp.Stderr) != "err\n" || resp.ExitCode != 3 {
		t.Fatalf("ExecSync = %+v, %v", resp, err)
	}
	// A shared pid namespace: the client sees the server's httpd.
	resp, err = w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: client, Cmd: []string{"ps"}, Timeout: 10})
	if err != nil || !strings.Contains(string(resp.Stdout), "httpd") {
		t.Fatalf("ps in the client: %q, %v", resp.GetStdout(), err)
	}
	// Stats: the server's CPU, memory and writable layer (it wrote /www);
	// the pod's processes and interfaces.
	cst, err := w.c.Runtime.ContainerStats(ctx, server)
	if err != nil || cst.Cpu.GetUsageCoreNanoSeconds().GetValue() == 0 || cst.Memory.GetWorkingSetBytes().GetValue() == 0 ||
		cst.WritableLayer.GetUsedBytes().GetValue() == 0 || cst.WritableLayer.GetInodesUsed().GetValue() < 2 {
		t.Fatalf("ContainerStats = %v, %v", cst, err)
	}
	// A live update reaches the cgroup and the status.
	if err := w.c.Runtime.UpdateContainerResources(ctx, server, &criapi.ContainerResources{Linux: &criapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20}}); err != nil {
		t.Fatal(err)
	}
	if cs, err := w.c.Runtime.ContainerStatus(ctx, server, false); err != nil ||
		cs.Status.GetResources().GetLinux().GetMemoryLimitInBytes() != 96<<20 {
		t.Fatalf("status after update: %v, %v", cs.GetStatus().GetResources(), err)
	}
	if cg, err := manager.Open("/proc/self/mountinfo"); err != nil {
		t.Fatal(err)
	} else if st, err := cg.Stats(pod.Linux.CgroupParent + "/" + server); err != nil || st.Memory.LimitBytes != 96<<20 {
		t.Fatalf("cgroup memory limit after update: %v, %v", st.Memory.LimitBytes, err)
	}
	pst, err := w.c.Runtime.PodSandboxStats(ctx, podID)
	if err != nil || pst.Linux.GetProcess().GetProcessCount().GetValue() < 3 ||
		pst.Linux.GetNetwork().GetDefaultInterface().GetName() != "eth0" || len(pst.Linux.GetContainers()) != 2 {
		t.Fatalf("PodSandboxStats = %v, %v", pst, err)
	}
	if all, err := w.c.Runtime.ListContainerStats(ctx, &criapi.ContainerStatsFilter{PodSandboxId: podID}); err != nil || len(all) != 2 {
		t.Fatalf("ListContainerStats = %v, %v", all, err)
	}
	list, err := w.c.Runtime.ListContainers(ctx, &criapi.ContainerFilter{PodSandboxId: podID,
		State: &criapi.ContainerStateValue{State: criapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil || len(list) != 2 {
		t.Fatalf("running containers %v, %v", list, err)
	}
	for _, id := range []string{server, client} {
		if err := w.c.Runtime.StopContainer(ctx, id, 5); err != nil {
			t.Fatal(err)
		}
		cs, err := w.c.Runtime.ContainerStatus(ctx, id, false)
		if err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_EXITED || cs.Status.FinishedAt == 0 {
			t.Fatalf("after stop: %v, %v", cs, err)
		}
		if err := w.c.Runtime.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if pods, _ := w.c.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Fatalf("pods left: %v", pods)
	}
}

func TestContainerExitReasons(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "exits", criapi.NamespaceMode_CONTAINER)
	for _, tc := range []struct {
		name, reason string
		code         int32
		cmd          []string
	}{
		{"ok", "Completed", 0, []string{"true"}},
		{"fails", "Error", 3, []string{"sh", "-c", "exit 3"}},
	} {
		id := w.container(t, podID, pod, tc.name, tc.cmd...)
		waitFor(t, func() bool {
			cs, err := w.c.Runtime.ContainerStatus(ctx, id, false)
			return err == nil && cs.Status.State == criapi.ContainerState_CONTAINER_EXITED
		}, tc.name+" exits")
		cs, _ := w.c.Runtime.ContainerStatus(ctx, id, false)
		if cs.Status.ExitCode != tc.code || cs.Status.Reason != tc.reason {
			t.Errorf("%s: exit %d reason %q, want %d %q", tc.name, cs.Status.ExitCode, cs.Status.Reason, tc.code, tc.reason)
		}
	}
	// Bad input.
	_, err := w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod,
		Config: &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "noimage"}, Image: &criapi.ImageSpec{Image: "nope:1"}}})
	harness.MustContain(t, fmt.Sprint(err), "NotFound", "not present")
	_, err = w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod,
		Config: &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "badmount"}, Image: &criapi.ImageSpec{Image: w.image},
			Mounts: []*criapi.Mount{{ContainerPath: "/data", HostPath: "relative/path"}}}})
	harness.MustContain(t, fmt.Sprint(err), "InvalidArgument", "relative/path")
	// A command that does not exist fails StartContainer, as the CRI has
	// it; the container stays created until removed.
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "nocmd"},
		Image: &criapi.ImageSpec{Image: w.image}, Command: []string{"no-such-command"}}, pod)
	if err != nil {
		t.Fatal(err)
	}
	err = w.c.Runtime.StartContainer(ctx, id)
	harness.MustContain(t, fmt.Sprint(err), "no-such-command")
	if cs, err := w.c.Runtime.ContainerStatus(ctx, id, false); err != nil || cs.Status.State != criapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("after a failed start: %v, %v", cs, err)
	}
	if err := w.c.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Errorf("remove after a failed start: %v", err)
	}
	_, err = w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod,
		Config: &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "missingmount"}, Image: &criapi.ImageSpec{Image: w.image},
			Mounts: []*criapi.Mount{{ContainerPath: "/data", HostPath: "/nonexistent/crib-e2e"}}}})
	harness.MustContain(t, fmt.Sprint(err), "InvalidArgument", "/nonexistent/crib-e2e")
	_, err = w.c.RawRt.ContainerStatus(ctx, &criapi.ContainerStatusRequest{ContainerId: strings.Repeat("f", 64)})
	harness.MustContain(t, fmt.Sprint(err), "NotFound")
	_, err = w.c.RawRt.PodSandboxStatus(ctx, &criapi.PodSandboxStatusRequest{PodSandboxId: strings.Repeat("e", 64)})
	harness.MustContain(t, fmt.Sprint(err), "NotFound")
	_, err = w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: strings.Repeat("e", 64), SandboxConfig: pod,
		Config: &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "nopod"}, Image: &criapi.ImageSpec{Image: w.image}}})
	harness.MustContain(t, fmt.Sprint(err), "NotFound")
	// Stop and remove of unknown ids succeed (CRI: idempotent).
	if err := w.c.Runtime.StopContainer(ctx, strings.Repeat("f", 64), 1); err != nil {
		t.Errorf("StopContainer of an unknown id: %v", err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, strings.Repeat("e", 64)); err != nil {
		t.Errorf("RemovePodSandbox of an unknown id: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
