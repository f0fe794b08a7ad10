package e2e

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// verboseInfo decodes the "info" entry of a verbose status the way crictl
// inspect does (each value of the map that is a JSON object is merged in
// as an object).
func verboseInfo(t *testing.T, info map[string]string) map[string]any {
	t.Helper()
	raw, ok := info["info"]
	if !ok {
		t.Fatalf("verbose status without an \"info\" entry: %v", info)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("info is not a JSON object: %v\n%s", err, raw)
	}
	return out
}

// infoPid is info.pid as the integer crictl's templates print.
func infoPid(t *testing.T, info map[string]any) int {
	t.Helper()
	f, ok := info["pid"].(float64)
	if !ok || f != float64(int(f)) {
		t.Fatalf("info.pid = %#v, want a number", info["pid"])
	}
	return int(f)
}

func nsInode(t *testing.T, pid int, ns string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+ns, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestContainerStatusMountsAreTheCRIMounts: ContainerStatus.mounts are the
// mounts of the ContainerConfig, field for field (as containerd reports
// them, and as critest's mount, propagation and read-only specs check),
// not the pod files (/etc/hosts, resolv.conf, hostname, /dev/shm) crib
// bind-mounts into every container.
func TestContainerStatusMountsAreTheCRIMounts(t *testing.T) {
	ro, shared := t.TempDir(), t.TempDir()
	asked := []*criapi.Mount{
		{ContainerPath: "/data/ro", HostPath: ro, Readonly: true, SelinuxRelabel: true},
		{ContainerPath: "/data/in", HostPath: shared, Propagation: criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	}
	p := startHostPod(t, func(c *criapi.ContainerConfig) { c.Mounts = asked }, "sleep", "3600")
	ctx := context.Background()
	resp, err := p.c.Runtime.ContainerStatus(ctx, p.id, false)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetStatus().GetMounts()
	if len(got) != len(asked) {
		t.Fatalf("ContainerStatus.mounts has %d entries, want the %d asked for: %v", len(got), len(asked), got)
	}
	for i := range asked {
		if !proto.Equal(got[i], asked[i]) {
			t.Errorf("mount %d = %v, want %v", i, got[i], asked[i])
		}
	}
	// The mounts are what they say: the read-only one refuses a write.
	if _, stderr, err := execStream(ctx, p.c, p.id, "", "touch", "/data/ro/x"); err == nil {
		t.Errorf("write to the read-only mount succeeded (%s)", stderr)
	}
}

// TestInspectInfo: the verbose info of ContainerStatus, PodSandboxStatus
// and ImageStatus has the keys containerd gives and scripts read through
// crictl inspect / inspectp / inspecti (info.pid, info.runtimeSpec,
// info.sandboxID, info.imageSpec), states as words, and image_ref names the
// image by digest as containerd does.
func TestInspectInfo(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "inspect", criapi.NamespaceMode_POD)
	id := w.container(t, podID, pod, "main", "sleep", "3607")

	cs, err := w.c.Runtime.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	info := verboseInfo(t, cs.GetInfo())
	if info["sandboxID"] != podID {
		t.Errorf("info.sandboxID = %v, want %s", info["sandboxID"], podID)
	}
	if info["state"] != "RUNNING" {
		t.Errorf("info.state = %#v, want \"RUNNING\"", info["state"])
	}
	pid := infoPid(t, info)
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || string(cmdline) != "sleep\x003607\x00" {
		t.Errorf("info.pid %d is not the container's process: cmdline %q, %v", pid, cmdline, err)
	}
	rawSpec, err := json.Marshal(info["runtimeSpec"])
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(rawSpec, &spec); err != nil || spec.Process == nil || spec.Linux == nil {
		t.Fatalf("info.runtimeSpec is not an OCI spec: %v\n%s", err, rawSpec)
	}
	if !slices.Equal(spec.Process.Args, []string{"sleep", "3607"}) || spec.Version == "" || spec.Linux.CgroupsPath == "" {
		t.Errorf("info.runtimeSpec: args %v, ociVersion %q, cgroupsPath %q", spec.Process.Args, spec.Version, spec.Linux.CgroupsPath)
	}

	// image_ref is the repo digest, image_id the image's ID.
	repo := w.image[:strings.LastIndex(w.image, ":")]
	st := cs.GetStatus()
	if !strings.HasPrefix(st.GetImageRef(), repo+"@sha256:") || !strings.HasPrefix(st.GetImageId(), "sha256:") {
		t.Errorf("image_ref %q (want %s@sha256:…), image_id %q (want sha256:…)", st.GetImageRef(), repo, st.GetImageId())
	}
	list, err := w.c.Runtime.ListContainers(ctx, &criapi.ContainerFilter{Id: id})
	if err != nil || len(list) != 1 || list[0].GetImageRef() != st.GetImageRef() || list[0].GetImageId() != st.GetImageId() {
		t.Errorf("ListContainers image_ref/image_id differ from ContainerStatus: %v, %v", list, err)
	}

	// The pod: the pause process that holds the shared pid namespace.
	ps, err := w.c.Runtime.PodSandboxStatus(ctx, podID, true)
	if err != nil {
		t.Fatal(err)
	}
	pinfo := verboseInfo(t, ps.GetInfo())
	if pinfo["state"] != "READY" {
		t.Errorf("pod info.state = %#v, want \"READY\"", pinfo["state"])
	}
	pausePid := infoPid(t, pinfo)
	if pausePid == 0 || pausePid == pid || nsInode(t, pausePid, "pid") != nsInode(t, pid, "pid") {
		t.Errorf("pod info.pid %d is not the pause process of the container's pid namespace", pausePid)
	}
	cfg, _ := pinfo["config"].(map[string]any)
	meta, _ := cfg["metadata"].(map[string]any)
	if meta["name"] != "inspect" || meta["uid"] != pod.Metadata.Uid || cfg["hostname"] != "inspect" ||
		cfg["log_directory"] != pod.LogDirectory {
		t.Errorf("pod info.config = %v, want the pod's metadata, hostname and log directory", pinfo["config"])
	}
	if ns, _ := pinfo["namespaces"].(map[string]any); ns == nil || ns["network"] == "" || ns["network"] == nil {
		t.Errorf("pod info.namespaces = %v, want the pinned network namespace", pinfo["namespaces"])
	}

	// The image: its OCI config as info.imageSpec.
	is, err := w.c.Images.ImageStatus(ctx, &criapi.ImageSpec{Image: w.image}, true)
	if err != nil {
		t.Fatal(err)
	}
	iinfo := verboseInfo(t, is.GetInfo())
	ispec, _ := iinfo["imageSpec"].(map[string]any)
	icfg, _ := ispec["config"].(map[string]any)
	rootfs, _ := ispec["rootfs"].(map[string]any)
	if ispec["os"] != "linux" || !jsonEqual(icfg["Cmd"], []string{"sh"}) || !jsonEqual(icfg["Env"], []string{"PATH=/bin"}) ||
		rootfs["type"] != "layers" {
		t.Errorf("image info.imageSpec = %v, want the image's OCI config", iinfo["imageSpec"])
	}
	if c, _ := iinfo["chainID"].(string); !strings.HasPrefix(c, "sha256:") {
		t.Errorf("image info.chainID = %#v", iinfo["chainID"])
	}

	// Stopped: states follow, and neither has a process any more.
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	cs, err = w.c.Runtime.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	if info := verboseInfo(t, cs.GetInfo()); info["state"] != "EXITED" {
		t.Errorf("stopped container info.state = %#v, want \"EXITED\"", info["state"])
	}
	ps, err = w.c.Runtime.PodSandboxStatus(ctx, podID, true)
	if err != nil {
		t.Fatal(err)
	}
	if pinfo := verboseInfo(t, ps.GetInfo()); pinfo["state"] != "NOTREADY" || infoPid(t, pinfo) != 0 {
		t.Errorf("stopped pod info.state %#v, info.pid %v; want \"NOTREADY\", 0", pinfo["state"], pinfo["pid"])
	}
}

// jsonEqual compares a decoded JSON value with a Go value through JSON.
func jsonEqual(got any, want any) bool {
	a, err1 := json.Marshal(got)
	b, err2 := json.Marshal(want)
	return err1 == nil && err2 == nil && string(a) == string(b)
}
