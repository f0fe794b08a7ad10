package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"

	"github.com/crib-runtime/crib/cgroups/manager"
)

// Kubelet is a standalone kubelet (no API server: static pods only) on a
// CRI endpoint, in a test's network namespace so that its HTTP probes reach
// pod addresses, with a cgroupRoot of the test's own.
type Kubelet struct {
	t         testing.TB
	netns     string
	dir       string
	Manifests string
	// CgroupRoot is the kubelet's cgroupRoot: kubepods and every pod's
	// cgroup are below it; it is removed when the test ends.
	CgroupRoot string
	// Node is the node name static pods are suffixed with.
	Node string
	Logs *SyncBuffer
}

// kernelTunables are the sysctls the kubelet sets at start unless they
// hold its values already. They are not namespaced: the kubelet gets its
// own mount namespace with its values bound over these files, so the host's
// are never changed.
var kernelTunables = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// KubeletCgroupRoot makes a cgroup for a kubelet's cgroupRoot, named
// /<prefix>-<random> (the kubelet checks that it exists), and removes it when
// the test ends: after the cleanups registered later, which stop the kubelet
// and remove its pods.
func KubeletCgroupRoot(t testing.TB, prefix string) string {
	t.Helper()
	root := fmt.Sprintf("/%s-%d", prefix, rand.Int64())
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Create(root, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cg.Remove(root); err != nil {
			t.Errorf("remove the kubelet's cgroup root: %v", err)
		}
		// On a hybrid host the kubelet also makes its cgroups under the
		// cgroup2 mount, which crib's v1 manager does not own.
		if err := RemoveUnifiedTwin(root); err != nil {
			t.Errorf("remove the kubelet's cgroup root: %v", err)
		}
	})
	return root
}

// KernelTunableBinds writes the kubelet's values of kernelTunables to files
// under dir and returns a shell command that binds them over /proc/sys: to
// run in the kubelet's own mount namespace, a slave of the host's (unshare
// --mount --propagation slave), before the kubelet starts.
func KernelTunableBinds(t testing.TB, dir string) string {
	t.Helper()
	var binds []string
	for key, v := range kernelTunables {
		f := filepath.Join(dir, "tunables", strings.ReplaceAll(key, "/", "."))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		binds = append(binds, fmt.Sprintf("mount --bind %s /proc/sys/%s", f, key))
	}
	sort.Strings(binds)
	return strings.Join(binds, " && ")
}

// StartKubelet runs the kubelet binary against the CRI endpoint from inside
// the network namespace netns (a name under /run/netns), with its files in
// dir, and waits until it serves its read-only API. When the test ends the
// kubelet is stopped, then leftovers runs (remove the pods it left through
// the runtime), then its cgroup root goes.
func StartKubelet(t testing.TB, binary, endpoint, netns, dir string, leftovers func()) *Kubelet {
	t.Helper()
	k := &Kubelet{t: t, netns: netns, dir: dir, Manifests: filepath.Join(dir, "manifests"),
		CgroupRoot: KubeletCgroupRoot(t, "crib-kubelet"), Node: "crib-node", Logs: &SyncBuffer{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(conf, []byte(k.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(k.Manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	script := KernelTunableBinds(t, dir) + " && exec " + strings.Join([]string{binary, "--config=" + conf,
		"--container-runtime-endpoint=" + endpoint, "--root-dir=" + filepath.Join(dir, "kubelet"),
		"--cert-dir=" + filepath.Join(dir, "kubelet-pki"), "--hostname-override=" + k.Node, "--v=2"}, " ")
	// The mount namespace is a slave of the host's: the kubelet sees the
	// runtime's mounts, and its own binds stay its own.
	cmd := exec.Command("nsenter", "--net=/run/netns/"+netns, "unshare", "--mount", "--propagation", "slave", "sh", "-c", script)
	cmd.Stdout, cmd.Stderr = k.Logs, k.Logs
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
		if t.Failed() {
			t.Logf("kubelet log:\n%s", k.Logs)
		}
		leftovers()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("kubelet exited: %v\n%s", err, k.Logs)
		default:
		}
		if _, err := k.Pods(); err == nil {
			return k
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kubelet did not serve its read-only port in time\n%s", k.Logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// config is a KubeletConfiguration for a test box: loopback listeners,
// eviction thresholds that a busy test disk does not trip, image GC off.
func (k *Kubelet) config() string {
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
`, k.Manifests, k.CgroupRoot, filepath.Join(k.dir, "pod-logs"))
}

// KubeletPod is what tests read of a pod in the kubelet's /pods.
type KubeletPod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase string `json:"phase"`
		// Reason is why the kubelet refused the pod, when it did.
		Reason     string `json:"reason"`
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
			// User is the ids the runtime reported in ContainerStatus.user
			// (the kubelet fills it only from a runtime advertising
			// SupplementalGroupsPolicy).
			User *struct {
				Linux *struct {
					UID                int64   `json:"uid"`
					GID                int64   `json:"gid"`
					SupplementalGroups []int64 `json:"supplementalGroups"`
				} `json:"linux"`
			} `json:"user"`
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

// Running is how many of the pod's containers run.
func (p KubeletPod) Running() int {
	n := 0
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil {
			n++
		}
	}
	return n
}

// Pods reads the kubelet's pods from its read-only port, keyed by their
// manifest's name (without the node suffix of static pods).
func (k *Kubelet) Pods() (map[string]KubeletPod, error) {
	hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
			return DialIn("/run/netns/"+k.netns, network, addr)
		}}}
	resp, err := hc.Get("http://127.0.0.1:10255/pods")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct{ Items []KubeletPod }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, err
	}
	out := map[string]KubeletPod{}
	for _, p := range list.Items {
		out[strings.TrimSuffix(p.Metadata.Name, "-"+k.Node)] = p
	}
	return out, nil
}

// WriteManifest adds a static pod; it is written aside and renamed, so the
// kubelet never reads half a file.
func (k *Kubelet) WriteManifest(name, yaml string) {
	k.t.Helper()
	tmp := filepath.Join(k.dir, name+".yaml")
	if err := os.WriteFile(tmp, []byte(yaml), 0o644); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.Manifests, name+".yaml")); err != nil {
		k.t.Fatal(err)
	}
}

// RemoveManifest deletes a static pod.
func (k *Kubelet) RemoveManifest(name string) {
	k.t.Helper()
	if err := os.Remove(filepath.Join(k.Manifests, name+".yaml")); err != nil {
		k.t.Fatal(err)
	}
}

// StaticPod is a static pod manifest around spec (lines indented for
// "spec:").
func StaticPod(name, spec string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\nspec:\n%s", name, spec)
}

// RemovePods stops and removes every pod the runtime has (what a stopped
// kubelet left behind).
func RemovePods(rt internalapi.RuntimeService) {
	ctx := context.Background()
	pods, _ := rt.ListPodSandbox(ctx, nil)
	for _, p := range pods {
		_ = rt.StopPodSandbox(ctx, p.Id)
		_ = rt.RemovePodSandbox(ctx, p.Id)
	}
}

// RemoveUnifiedTwin removes, bottom-up, what runc or the kubelet made for a
// cgroup outside the controllers crib's v1 manager owns: under a hybrid
// host's cgroup2 mount (/sys/fs/cgroup/unified) and its named hierarchies
// (name=systemd). Every cgroup mount is searched.
func RemoveUnifiedTwin(parent string) error {
	var left []string
	for _, mnt := range CgroupMounts() {
		root := filepath.Join(mnt.Dir, parent)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
		if _, err := os.Stat(root); err == nil {
			left = append(left, root)
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("%s left", strings.Join(left, ", "))
	}
	return nil
}

// CgroupMount is a cgroup hierarchy's mount: where, its type (cgroup or
// cgroup2) and its super options (rw,cpu…).
type CgroupMount struct{ Dir, Type, Options string }

// CgroupMounts lists this mount namespace's cgroup mounts.
func CgroupMounts() []CgroupMount {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []CgroupMount
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		for i := 6; i < len(f); i++ {
			if f[i] != "-" {
				continue
			}
			if i+3 < len(f) && (f[i+1] == "cgroup" || f[i+1] == "cgroup2") {
				out = append(out, CgroupMount{Dir: f[4], Type: f[i+1], Options: f[i+3]})
			}
			break
		}
	}
	return out
}
