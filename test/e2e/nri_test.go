package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// adjustPlugin is an NRI plugin in the test process: it adjusts containers
// named "adjusted" (env, a read-only bind, a device, an rlimit, the OOM
// score, a createContainer hook), asks for what crib refuses for containers named "refused", and
// raises the memory limit a CRI update asks for.
type adjustPlugin struct {
	dataDir string
	mu      sync.Mutex
	created []string
	// startPid is the pid StartContainer saw, by container name.
	startPid map[string]uint32
}

func (p *adjustPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.startPid == nil {
		p.startPid = map[string]uint32{}
	}
	p.startPid[c.GetName()] = c.GetPid()
	return nil
}

func (p *adjustPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.mu.Lock()
	p.created = append(p.created, c.GetName())
	p.mu.Unlock()
	adj := &api.ContainerAdjustment{}
	switch c.GetName() {
	case "adjusted":
		adj.AddEnv("FROM_NRI", "yes")
		adj.AddMount(&api.Mount{Destination: "/nri-data", Type: "bind", Source: p.dataDir, Options: []string{"rbind", "ro"}})
		// /dev/null's numbers, under another name, allowed in the device
		// cgroup by the adjustment itself.
		adj.AddDevice(&api.LinuxDevice{Path: "/dev/nri-null", Type: "c", Major: 1, Minor: 3, FileMode: api.FileMode(0o666)})
		adj.AddRlimit("RLIMIT_NOFILE", 900, 800)
		score := 500
		adj.SetLinuxOomScoreAdj(&score)
		// Run in the container's namespaces before pivot_root, in its rootfs.
		adj.AddHooks(&api.Hooks{CreateContainer: []*api.Hook{{Path: filepath.Join(p.dataDir, "hook"), Args: []string{"hook", "ran"}}}})
		adj.AddCDIDevice(&api.CDIDevice{Name: "crib.test/nri=nulldev"})
	case "refused":
		adj.SetLinuxCgroupsPath("/elsewhere")
	}
	return adj, nil, nil
}

func (p *adjustPlugin) UpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container, r *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	u := &api.ContainerUpdate{ContainerId: c.GetId()}
	u.SetLinuxMemoryLimit(r.GetMemory().GetLimit().GetValue() * 2)
	return []*api.ContainerUpdate{u}, nil
}

// TestNRIAdjustments: a plugin connected to the daemon's socket adjusts a
// container's spec and crib applies every adjustment (checked inside the
// container), refuses one it cannot apply (FailedPrecondition naming the
// field, nothing left behind), applies the plugin's change to a CRI update
// and its unsolicited update. The socket is root's only.
func TestNRIAdjustments(t *testing.T) {
	// A CDI device for the plugin to add.
	cdiDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cdiDir, "nri.yaml"), []byte(`cdiVersion: "0.6.0"
kind: crib.test/nri
devices:
- name: nulldev
  containerEdits:
    deviceNodes: [{path: /dev/nri-cdi-null, hostPath: /dev/null}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newPodWorldWith(t, func(e *harness.Env) { e.WriteConfig(fmt.Sprintf("\n[cdi]\nspec_dirs = [%q]\n", cdiDir)) })
	if fi, err := os.Stat(w.e.NRISock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("NRI socket %s: %v, %v; want a 0600 socket", w.e.NRISock, fi, err)
	}
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "file"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "hook"), []byte("#!/bin/sh\necho \"$1 $PPID\" > ./nri-hook\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := &adjustPlugin{dataDir: data}
	s := connectPlugin(t, w, p, "e2e-adjust")

	pod, podID := w.runPod(t, "nri", criapi.NamespaceMode_CONTAINER)
	id := w.startSleeper(t, podID, pod, "adjusted", &criapi.ContainerConfig{Linux: &criapi.LinuxContainerConfig{
		SecurityContext: &criapi.LinuxContainerSecurityContext{RunAsUser: &criapi.Int64Value{Value: 0}},
		Resources:       &criapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}})
	got := w.probe(t, id, "adjusted", `
echo "env $FROM_NRI"
echo "data $(cat /nri-data/file)"
echo "device $(stat -c %t:%T /dev/nri-null)"
echo x > /dev/nri-null && echo "devwrite ok"
echo "nofile $(ulimit -Sn)/$(ulimit -Hn)"
echo "oom $(cat /proc/1/oom_score_adj)"
touch /nri-data/x 2>/dev/null || echo "readonly yes"
echo "hook $(cat /nri-hook)"
echo "cdi $(stat -c %t:%T /dev/nri-cdi-null)"
`)
	// StartContainer comes once the process exists, as in containerd.
	st, err := w.c.Runtime.ContainerStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	startPid := p.startPid["adjusted"]
	p.mu.Unlock()
	if startPid == 0 || !strings.Contains(st.GetInfo()["info"], fmt.Sprintf(`"pid":%d,`, startPid)) {
		t.Errorf("StartContainer saw pid %d; verbose status: %.200s", startPid, st.GetInfo()["info"])
	}
	// The plugin's CDI device is in the record, as the container's own are.
	if devs, _ := verboseInfo(t, st.GetInfo())["cdiDevices"].([]any); len(devs) != 1 || devs[0] != "crib.test/nri=nulldev" {
		t.Errorf("info.cdiDevices = %v, want the plugin's crib.test/nri=nulldev", devs)
	}
	for k, want := range map[string]string{"env": "yes", "data": "from the host", "device": "1:3", "devwrite": "ok",
		"nofile": "800/900", "oom": "500", "readonly": "yes", "hook": "ran 1", "cdi": "1:3"} {
		if got[k] != want {
			t.Errorf("in the adjusted container, %s = %q, want %q", k, got[k], want)
		}
	}

	// A CRI update the plugin doubles.
	ctx := context.Background()
	if err := w.c.Runtime.UpdateContainerResources(ctx, id, &criapi.ContainerResources{Linux: &criapi.LinuxContainerResources{MemoryLimitInBytes: 100 << 20}}); err != nil {
		t.Fatal(err)
	}
	if l := memoryLimit(t, w, id); l != 200<<20 {
		t.Errorf("memory limit after a CRI update of 100 MiB: %d, want the plugin's 200 MiB", l)
	}
	// An update the plugin makes unsolicited.
	upd := &api.ContainerUpdate{ContainerId: id}
	upd.SetLinuxMemoryLimit(300 << 20)
	if failed, err := s.UpdateContainers([]*api.ContainerUpdate{upd}); err != nil || len(failed) != 0 {
		t.Fatalf("UpdateContainers: %v, %v", failed, err)
	}
	if l := memoryLimit(t, w, id); l != 300<<20 {
		t.Errorf("memory limit after the plugin's update: %d, want 300 MiB", l)
	}

	_, err = w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod, Config: &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "refused"}, Image: &criapi.ImageSpec{Image: w.image}, Command: []string{"true"}}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "linux.cgroupsPath") {
		t.Errorf("a cgroupsPath adjustment: %v, want FailedPrecondition naming linux.cgroupsPath", err)
	}
	list, err := w.c.Runtime.ListContainers(ctx, &criapi.ContainerFilter{PodSandboxId: podID})
	if err != nil || len(list) != 1 {
		t.Errorf("containers after the refusal: %v, %v; want the adjusted one only", list, err)
	}
}

func memoryLimit(t *testing.T, w *podWorld, id string) int64 {
	t.Helper()
	st, err := w.c.Runtime.ContainerStatus(context.Background(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	return st.GetStatus().GetResources().GetLinux().GetMemoryLimitInBytes()
}

// TestNRISocketTaken: a daemon does not take an NRI socket another
// process answers on (another runtime's NRI), and says why.
func TestNRISocketTaken(t *testing.T) {
	first := harness.NewEnv(t)
	first.Start()
	second := harness.NewEnv(t)
	second.NRISock = first.NRISock
	second.WriteConfig("")
	d := second.Spawn()
	err := d.Wait(20 * time.Second)
	var exit interface{ ExitCode() int }
	if err == nil || !errors.As(err, &exit) || !strings.Contains(d.Logs.String(), "nri.socket_path") {
		t.Fatalf("second daemon on a taken NRI socket: %v\n%s", err, d.Logs)
	}
	if _, err := os.Stat(first.NRISock); err != nil {
		t.Errorf("the first daemon's socket went: %v", err)
	}
}

// TestNRIPreinstalledPlugin: an executable in plugin_path is started by
// the daemon with its configuration from plugin_config_path, adjusts
// containers, and is stopped with the daemon.
func TestNRIPreinstalledPlugin(t *testing.T) {
	var bin string
	w := newPodWorldWith(t, func(e *harness.Env) {
		bin = filepath.Join(e.NRIPlugins, "10-nriplugin")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/crib-runtime/crib/test/nriplugin").CombinedOutput(); err != nil {
			t.Fatalf("build the test plugin: %v\n%s", err, out)
		}
		if err := os.WriteFile(filepath.Join(e.NRIConf, "10-nriplugin.conf"), []byte("CRIB_PRE=installed\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	pod, podID := w.runPod(t, "nri-pre", criapi.NamespaceMode_CONTAINER)
	id := w.startSleeper(t, podID, pod, "app", &criapi.ContainerConfig{})
	if got := w.probe(t, id, "app", `echo "env $CRIB_PRE"`)["env"]; got != "installed" {
		t.Errorf("CRIB_PRE = %q, want the pre-installed plugin's %q", got, "installed")
	}
	if pids := processesOf(bin); len(pids) != 1 {
		t.Errorf("plugin processes while the daemon runs: %v, want one", pids)
	}
	w.d.Stop()
	for deadline := time.Now().Add(5 * time.Second); len(processesOf(bin)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v left after the daemon stopped", processesOf(bin))
		}
	}
}

// processesOf lists the pids running the executable at path.
func processesOf(path string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && exe == path {
			pids = append(pids, pid)
		}
	}
	return pids
}

// connectPlugin connects plugin, an NRI plugin in the test process, to the
// daemon's socket as name, and waits until the daemon has synchronised it.
func connectPlugin(t *testing.T, w *podWorld, plugin any, name string) stub.Stub {
	t.Helper()
	s, err := stub.New(plugin, stub.WithPluginName(name), stub.WithPluginIdx("10"), stub.WithSocketPath(w.e.NRISock))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	waitForLog(t, w.d, name+`\" connected and synchronized`)
	return s
}
