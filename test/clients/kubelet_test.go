package clients

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// kubeletWorld is a standalone kubelet on a crib daemon, both in a network
// namespace of the test's.
type kubeletWorld struct {
	*harness.Kubelet
	c harness.Clients
}

// startKubelet starts crib and a kubelet on it, with busybox:1.37 and the
// images in more (a reference below docker.io's library/ to its image) in
// the registry the daemon mirrors.
func startKubelet(t *testing.T, more map[string]v1.Image) *kubeletWorld {
	t.Helper()
	kubelet := client(t, "kubelet")
	reg := testregistry.Start(t)
	reg.Push(t, "library/busybox:1.37", testregistry.Busybox(t, ""))
	for ref, img := range more {
		reg.Push(t, ref, img)
	}
	e := harness.NewEnv(t)
	e.WithNetwork(fmt.Sprintf("10.90.%d.0/24", rand.IntN(200)+20))
	mirror := reg.ListenIn(t, "/run/netns/"+e.Netns)
	e.WriteConfig(fmt.Sprintf("\n[registry.hosts.\"_default\"]\nskip_server = true\n[[registry.hosts.\"_default\".mirrors]]\nendpoint = \"http://%s\"\n", mirror))
	w := &kubeletWorld{c: e.Start().Clients()}
	// Pods the kubelet left (a failed test) go through crib.
	w.Kubelet = harness.StartKubelet(t, kubelet, "unix://"+e.Sock, e.Netns, filepath.Join(e.Dir, "kubelet"), func() { harness.RemovePods(w.c.Runtime) })
	return w
}

const bb = "    image: busybox:1.37\n    imagePullPolicy: IfNotPresent\n"

// TestKubeletStaticPods runs a standalone kubelet v1.37 on crib with the
// settings a node has by default (cgroupfs, hugetlb limits on every pod)
// and checks what it asks of a runtime: pods start, probes pass, limits
// reach the cgroups, containers restart with back-off, init containers run
// first, and a removed manifest leaves nothing.
func TestKubeletStaticPods(t *testing.T) {
	w := startKubelet(t, nil)
	ctx := context.Background()
	pods := map[string]string{
		"single": harness.StaticPod("single", "  containers:\n  - name: sleep\n"+bb+"    command: [sleep, '3600']\n"),
		"probe": harness.StaticPod("probe", "  containers:\n  - name: web\n"+bb+
			"    command: [sh, -c, 'mkdir -p /www && echo ready > /www/index.html && exec httpd -f -p 80 -h /www']\n"+
			"    readinessProbe:\n      httpGet: {path: /, port: 80}\n      periodSeconds: 1\n"+
			"  - name: client\n"+bb+"    command: [sh, -c, 'until wget -qO- http://127.0.0.1/; do sleep 0.2; done; exec sleep 3600']\n"),
		"guaranteed": harness.StaticPod("guaranteed", "  containers:\n  - name: limited\n"+bb+"    command: [sleep, '3600']\n"+
			"    resources:\n      limits: {cpu: 100m, memory: 64Mi}\n      requests: {cpu: 100m, memory: 64Mi}\n"),
		"sharepid": harness.StaticPod("sharepid", "  shareProcessNamespace: true\n  containers:\n  - name: a\n"+bb+"    command: [sleep, '3601']\n"+
			"  - name: b\n"+bb+"    command: [sleep, '3602']\n"),
		"crash": harness.StaticPod("crash", "  containers:\n  - name: crash\n"+bb+"    command: [sh, -c, 'sleep 0.5; exit 3']\n"),
		"init": harness.StaticPod("init", "  initContainers:\n  - name: prepare\n"+bb+"    command: [sh, -c, 'echo prepared > /data/x']\n"+
			"    volumeMounts: [{name: data, mountPath: /data}]\n"+
			"  containers:\n  - name: main\n"+bb+"    command: [sleep, '3600']\n    volumeMounts: [{name: data, mountPath: /data}]\n"+
			"  volumes: [{name: data, emptyDir: {}}]\n"),
	}
	written := time.Now()
	for name, m := range pods {
		w.WriteManifest(name, m)
	}
	// Every pod's containers run (crash's restarts instead).
	want := map[string]int{"single": 1, "probe": 2, "guaranteed": 1, "sharepid": 2, "init": 1}
	var allRunning time.Duration
	waitUntil(t, 120*time.Second, "every static pod's containers running", func() bool {
		got, err := w.Pods()
		if err != nil {
			return false
		}
		for name, n := range want {
			if got[name].Running() != n {
				return false
			}
		}
		allRunning = time.Since(written)
		return true
	})
	t.Logf("%d static pods from manifests written to every container running: %s", len(want), allRunning.Round(time.Millisecond))

	t.Run("readiness probe", func(t *testing.T) {
		waitUntil(t, 60*time.Second, "pod probe Ready", func() bool {
			got, _ := w.Pods()
			for _, c := range got["probe"].Status.Conditions {
				if c.Type == "Ready" && c.Status == "True" {
					return true
				}
			}
			return false
		})
	})
	t.Run("guaranteed limits in the cgroup", func(t *testing.T) {
		got, _ := w.Pods()
		id := strings.TrimPrefix(got["guaranteed"].Status.ContainerStatuses[0].ContainerID, "crib://")
		checkCgroupFile(t, w.CgroupRoot, id, map[string]string{
			"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.cfs_quota_us": "10000", // v1
			"memory.max": "67108864", "cpu.max": "10000 100000", // v2
		})
	})
	t.Run("shared pid namespace", func(t *testing.T) {
		got, _ := w.Pods()
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
		got, _ := w.Pods()
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
			got, _ := w.Pods()
			cs := got["crash"].Status.ContainerStatuses
			return len(cs) == 1 && cs[0].RestartCount >= 2
		})
	})
	t.Run("removed manifests leave nothing", func(t *testing.T) {
		for name := range pods {
			w.RemoveManifest(name)
		}
		waitUntil(t, 90*time.Second, "every pod gone from crib", func() bool {
			ps, err := w.c.Runtime.ListPodSandbox(ctx, nil)
			cs, err2 := w.c.Runtime.ListContainers(ctx, nil)
			return err == nil && err2 == nil && len(ps) == 0 && len(cs) == 0
		})
		left, _ := filepath.Glob("/sys/fs/cgroup/*" + w.CgroupRoot + "/kubepods*/*/pod*")
		left2, _ := filepath.Glob("/sys/fs/cgroup/*" + w.CgroupRoot + "/kubepods*/pod*")
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
