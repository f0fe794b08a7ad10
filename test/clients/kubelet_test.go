package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// kubeletWorld is a standalone kubelet (no API server: static pods only) on
// a crib daemon, both in a network namespace of the test's, so that the
// kubelet's HTTP probes reach pod addresses.
type kubeletWorld struct {
	e         *harness.Env
	c         harness.Clients
	manifests string
	cgroup    string // the kubelet's cgroupRoot, the test's own
	node      string
	logs      *harness.SyncBuffer
}

// kernelTunables are the sysctls the kubelet sets at start unless they
// hold its values already; they are not namespaced. The kubelet gets its
// own mount namespace with its values bound over these files, so the
// host's are never changed.
var kernelTunables = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

func startKubelet(t *testing.T) *kubeletWorld {
	t.Helper()
	kubelet := client(t, "kubelet")
	reg := testregistry.Start(t)
	reg.Push(t, "library/busybox:1.37", testregistry.Busybox(t, ""))
	e := harness.NewEnv(t)
	e.WithNetwork(fmt.Sprintf("10.90.%d.0/24", rand.IntN(200)+20))
	mirror := reg.ListenIn(t, "/run/netns/"+e.Netns)
	e.WriteConfig(fmt.Sprintf("\n[registry.hosts.\"_default\"]\nskip_server = true\n[[registry.hosts.\"_default\".mirrors]]\nendpoint = \"http://%s\"\n", mirror))
	d := e.Start()
	w := &kubeletWorld{e: e, c: d.Clients(), manifests: filepath.Join(e.Dir, "manifests"),
		cgroup: fmt.Sprintf("/crib-kubelet-%d", rand.Int64()), node: "crib-node", logs: &harness.SyncBuffer{}}

	// The kubelet checks that its cgroupRoot exists; everything it makes
	// goes below, and is the test's to remove.
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Create(w.cgroup, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cg.Remove(w.cgroup); err != nil {
			t.Errorf("remove the kubelet's cgroup root: %v", err)
		}
	})
	tun := filepath.Join(e.Dir, "tunables")
	var binds []string
	for k, v := range kernelTunables {
		f := filepath.Join(tun, strings.ReplaceAll(k, "/", "."))
		if err := os.MkdirAll(tun, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, fmt.Sprintf("mount --bind %s /proc/sys/%s", f, k))
	}
	conf := filepath.Join(e.Dir, "kubelet.yaml")
	if err := os.WriteFile(conf, []byte(w.kubeletConfig()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(w.manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.Join(binds, " && ") + " && exec " + strings.Join([]string{kubelet, "--config=" + conf,
		"--container-runtime-endpoint=unix://" + e.Sock, "--root-dir=" + filepath.Join(e.Dir, "kubelet"),
		"--cert-dir=" + filepath.Join(e.Dir, "kubelet-pki"), "--hostname-override=" + w.node, "--v=2"}, " ")
	// The mount namespace is a slave of the host's: the kubelet sees
	// crib's mounts, and its own binds stay its own.
	cmd := exec.Command("nsenter", "--net=/run/netns/"+e.Netns, "unshare", "--mount", "--propagation", "slave", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = w.logs, w.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		// Pods the kubelet left (a failed test) go through crib.
		ctx := context.Background()
		pods, _ := w.c.Runtime.ListPodSandbox(ctx, nil)
		for _, p := range pods {
			_ = w.c.Runtime.StopPodSandbox(ctx, p.Id)
			_ = w.c.Runtime.RemovePodSandbox(ctx, p.Id)
		}
		if t.Failed() {
			t.Logf("kubelet log:\n%s", w.logs)
		}
	})
	// Ready when it serves its read-only API.
	waitUntil(t, 60*time.Second, "the kubelet's read-only port", func() bool {
		select {
		case err := <-done:
			t.Fatalf("kubelet exited: %v\n%s", err, w.logs)
		default:
		}
		_, err := w.pods()
		return err == nil
	})
	return w
}

func (w *kubeletWorld) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %s
fileCheckFrequency: 1s
syncFrequency: 2s
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
address: 127.0.0.1
port: 10250
readOnlyPort: 10255
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podLogsDir: %s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: /etc/resolv.conf
`, w.manifests, w.cgroup, filepath.Join(w.e.Dir, "pod-logs"))
}

// kubeletPod is what the test reads of the kubelet's /pods.
type kubeletPod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			Name         string `json:"name"`
			Ready        bool   `json:"ready"`
			RestartCount int    `json:"restartCount"`
			ContainerID  string `json:"containerID"`
			State        struct {
				Running *struct{} `json:"running"`
			} `json:"state"`
		} `json:"containerStatuses"`
		InitContainerStatuses []struct {
			Name  string `json:"name"`
			State struct {
				Terminated *struct {
					ExitCode int `json:"exitCode"`
				} `json:"terminated"`
			} `json:"state"`
		} `json:"initContainerStatuses"`
	} `json:"status"`
}

// pods reads the kubelet's pods from its read-only port, inside the netns.
func (w *kubeletWorld) pods() (map[string]kubeletPod, error) {
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return harness.DialIn("/run/netns/"+w.e.Netns, network, addr)
		}}}
	resp, err := hc.Get("http://127.0.0.1:10255/pods")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct{ Items []kubeletPod }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	out := map[string]kubeletPod{}
	for _, p := range list.Items {
		out[strings.TrimSuffix(p.Metadata.Name, "-"+w.node)] = p
	}
	return out, nil
}

func (w *kubeletWorld) writeManifest(t *testing.T, name, yaml string) {
	t.Helper()
	// Written aside and renamed, so the kubelet never reads half a file.
	tmp := filepath.Join(w.e.Dir, name+".yaml")
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.manifests, name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// crib pods of a static pod, found by the kubelet's labels.
func (w *kubeletWorld) sandboxes(t *testing.T, name string) []*criapi.PodSandbox {
	t.Helper()
	pods, err := w.c.Runtime.ListPodSandbox(context.Background(), &criapi.PodSandboxFilter{
		LabelSelector: map[string]string{"io.kubernetes.pod.name": name + "-" + w.node}})
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// staticPod is a static pod manifest around the given spec lines (indented
// for "spec:").
func staticPod(name, spec string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\nspec:\n%s", name, spec)
}

const bb = "    image: busybox:1.37\n    imagePullPolicy: IfNotPresent\n"

// TestKubeletStaticPods runs a standalone kubelet v1.37 on crib with the
// settings a node has by default (cgroupfs, hugetlb limits on every pod)
// and checks what it asks of a runtime: pods start, probes pass, limits
// reach the cgroups, containers restart with back-off, init containers run
// first, and a removed manifest leaves nothing.
func TestKubeletStaticPods(t *testing.T) {
	w := startKubelet(t)
	ctx := context.Background()
	pods := map[string]string{
		"single": staticPod("single", "  containers:\n  - name: sleep\n"+bb+"    command: [sleep, '3600']\n"),
		"probe": staticPod("probe", "  containers:\n  - name: web\n"+bb+
			"    command: [sh, -c, 'mkdir -p /www && echo ready > /www/index.html && exec httpd -f -p 80 -h /www']\n"+
			"    readinessProbe:\n      httpGet: {path: /, port: 80}\n      periodSeconds: 1\n"+
			"  - name: client\n"+bb+"    command: [sh, -c, 'until wget -qO- http://127.0.0.1/; do sleep 0.2; done; exec sleep 3600']\n"),
		"guaranteed": staticPod("guaranteed", "  containers:\n  - name: limited\n"+bb+"    command: [sleep, '3600']\n"+
			"    resources:\n      limits: {cpu: 100m, memory: 64Mi}\n      requests: {cpu: 100m, memory: 64Mi}\n"),
		"sharepid": staticPod("sharepid", "  shareProcessNamespace: true\n  containers:\n  - name: a\n"+bb+"    command: [sleep, '3601']\n"+
			"  - name: b\n"+bb+"    command: [sleep, '3602']\n"),
		"crash": staticPod("crash", "  containers:\n  - name: crash\n"+bb+"    command: [sh, -c, 'sleep 0.5; exit 3']\n"),
		"init": staticPod("init", "  initContainers:\n  - name: prepare\n"+bb+"    command: [sh, -c, 'echo prepared > /data/x']\n"+
			"    volumeMounts: [{name: data, mountPath: /data}]\n"+
			"  containers:\n  - name: main\n"+bb+"    command: [sleep, '3600']\n    volumeMounts: [{name: data, mountPath: /data}]\n"+
			"  volumes: [{name: data, emptyDir: {}}]\n"),
	}
	written := time.Now()
	for name, m := range pods {
		w.writeManifest(t, name, m)
	}
	running := func(p kubeletPod, n int) bool {
		c := 0
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				c++
			}
		}
		return c == n
	}
	// Every pod's containers run (crash's restarts instead).
	want := map[string]int{"single": 1, "probe": 2, "guaranteed": 1, "sharepid": 2, "init": 1}
	var allRunning time.Duration
	waitUntil(t, 120*time.Second, "every static pod's containers running", func() bool {
		got, err := w.pods()
		if err != nil {
			return false
		}
		for name, n := range want {
			if !running(got[name], n) {
				return false
			}
		}
		allRunning = time.Since(written)
		return true
	})
	t.Logf("%d static pods from manifests written to every container running: %s", len(want), allRunning.Round(time.Millisecond))

	t.Run("readiness probe", func(t *testing.T) {
		waitUntil(t, 60*time.Second, "pod probe Ready", func() bool {
			got, _ := w.pods()
			for _, c := range got["probe"].Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					return true
				}
			}
			return false
		})
	})
	t.Run("guaranteed limits in the cgroup", func(t *testing.T) {
		got, _ := w.pods()
		id := strings.TrimPrefix(got["guaranteed"].Status.ContainerStatuses[0].ContainerID, "crib://")
		checkCgroupFile(t, w.cgroup, id, map[string]string{
			"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.cfs_quota_us": "10000", // v1
			"memory.max": "67108864", "cpu.max": "10000 100000", // v2
		})
	})
	t.Run("shared pid namespace", func(t *testing.T) {
		got, _ := w.pods()
		for _, cs := range got["sharepid"].Status.ContainerStatuses {
			if cs.Name != "b" {
				continue
			}
			resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: strings.TrimPrefix(cs.ContainerID, "crib://"), Cmd: []string{"ps"}, Timeout: 10})
			if err != nil || !strings.Contains(string(resp.Stdout), "sleep 3601") {
				t.Fatalf("ps in b: %q, %v", resp.GetStdout(), err)
			}
		}
	})
	t.Run("init container ran first", func(t *testing.T) {
		got, _ := w.pods()
		p := got["init"]
		if len(p.Status.InitContainerStatuses) != 1 || p.Status.InitContainerStatuses[0].State.Terminated == nil ||
			p.Status.InitContainerStatuses[0].State.Terminated.ExitCode != 0 {
			t.Fatalf("init container status: %+v", p.Status.InitContainerStatuses)
		}
		resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: strings.TrimPrefix(p.Status.ContainerStatuses[0].ContainerID, "crib://"),
			Cmd: []string{"cat", "/data/x"}, Timeout: 10})
		if err != nil || string(resp.Stdout) != "prepared\n" {
			t.Fatalf("main reads what init wrote: %q, %v", resp.GetStdout(), err)
		}
	})
	t.Run("crash restarts with back-off", func(t *testing.T) {
		waitUntil(t, 90*time.Second, "two restarts of crash", func() bool {
			got, _ := w.pods()
			cs := got["crash"].Status.ContainerStatuses
			return len(cs) == 1 && cs[0].RestartCount >= 2
		})
	})
	t.Run("removed manifests leave nothing", func(t *testing.T) {
		for name := range pods {
			if err := os.Remove(filepath.Join(w.manifests, name+".yaml")); err != nil {
				t.Fatal(err)
			}
		}
		waitUntil(t, 90*time.Second, "every pod gone from crib", func() bool {
			ps, err := w.c.Runtime.ListPodSandbox(ctx, nil)
			cs, err2 := w.c.Runtime.ListContainers(ctx, nil)
			return err == nil && err2 == nil && len(ps) == 0 && len(cs) == 0
		})
		left, _ := filepath.Glob("/sys/fs/cgroup/*" + w.cgroup + "/kubepods*/*/pod*")
		left2, _ := filepath.Glob("/sys/fs/cgroup/*" + w.cgroup + "/kubepods*/pod*")
		if l := append(left, left2...); len(l) != 0 {
			t.Errorf("pod cgroups left: %v", l)
		}
	})
}

// checkCgroupFile finds container id's cgroup below root in each hierarchy
// and compares the files in want that exist there (v1 or v2 names).
func checkCgroupFile(t *testing.T, root, id string, want map[string]string) {
	t.Helper()
	found := 0
	for file, value := range want {
		ctrl, name := filepath.Split(file)
		matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", ctrl, root, "kubepods*", "pod*", id, name))
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != value {
				t.Errorf("%s = %q, want %q", m, got, value)
			}
			found++
		}
	}
	if found < 2 {
		t.Errorf("found %d of the container's limit files below %s, want memory and cpu", found, root)
	}
}
