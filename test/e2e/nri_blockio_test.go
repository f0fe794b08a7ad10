package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// blockIOPlugin gives containers named "throttled" the block I/O class
// "slow", and those named "unknown" a class the node lacks.
type blockIOPlugin struct{}

func (blockIOPlugin) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	adj := &api.ContainerAdjustment{}
	switch c.GetName() {
	case "throttled":
		adj.SetLinuxBlockIOClass("slow")
	case "unknown":
		adj.SetLinuxBlockIOClass("nope")
	}
	return adj, nil, nil
}

// hostBlockDevice is a whole disk of this host with a node in /dev, as
// "/dev/vda" and "254:0"; loop devices only when there is nothing else.
func hostBlockDevice(t *testing.T) (node, dev string) {
	t.Helper()
	ents, _ := os.ReadDir("/sys/block")
	var loop [2]string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err != nil {
			continue
		}
		if fi, err := os.Stat("/dev/" + e.Name()); err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			continue
		}
		if strings.HasPrefix(e.Name(), "loop") {
			if loop[0] == "" {
				loop = [2]string{"/dev/" + e.Name(), strings.TrimSpace(string(b))}
			}
			continue
		}
		return "/dev/" + e.Name(), strings.TrimSpace(string(b))
	}
	if loop[0] == "" {
		t.Fatal("no block device under /sys/block with a node in /dev: this test needs one to throttle")
	}
	return loop[0], loop[1]
}

// TestNRIBlockIOClass: a plugin gives a container a block I/O class from
// the daemon's class file; the class's throttle is in the container's
// cgroup and its verbose status names the class. A class the file lacks
// fails the create, naming it.
func TestNRIBlockIOClass(t *testing.T) {
	node, dev := hostBlockDevice(t)
	classFile := filepath.Join(t.TempDir(), "blockio.yaml")
	classes := fmt.Sprintf("Classes:\n  slow:\n  - Devices: [%q]\n    ThrottleReadBps: 1Mi\n    ThrottleWriteIOPS: 300\n", node)
	if err := os.WriteFile(classFile, []byte(classes), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newPodWorldWith(t, func(e *harness.Env) {
		e.WriteConfig(fmt.Sprintf("\n[blockio]\nconfig_file = %q\n", classFile))
	})
	connectPlugin(t, w, blockIOPlugin{}, "e2e-blockio")

	ctx := context.Background()
	pod, podID := w.runPod(t, "blockio", criapi.NamespaceMode_CONTAINER)
	id := w.startSleeper(t, podID, pod, "throttled", &criapi.ContainerConfig{})
	st, err := w.c.Runtime.ContainerStatus(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		CgroupsPath  string `json:"cgroupsPath"`
		BlockIOClass string `json:"blockioClass"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil {
		t.Fatal(err)
	}
	if info.BlockIOClass != "slow" {
		t.Errorf("verbose status blockioClass = %q, want slow", info.BlockIOClass)
	}
	checkThrottle := func(when string) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/blkio", info.CgroupsPath, "blkio.throttle.read_bps_device")); err == nil {
			if got, want := strings.TrimSpace(string(b)), dev+" 1048576"; got != want {
				t.Errorf("%s: blkio.throttle.read_bps_device = %q, want %q", when, got, want)
			}
			b, _ = os.ReadFile(filepath.Join("/sys/fs/cgroup/blkio", info.CgroupsPath, "blkio.throttle.write_iops_device"))
			if got, want := strings.TrimSpace(string(b)), dev+" 300"; got != want {
				t.Errorf("%s: blkio.throttle.write_iops_device = %q, want %q", when, got, want)
			}
			return
		}
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", info.CgroupsPath, "io.max"))
		if err != nil {
			t.Fatalf("%s: the container's cgroup %s has neither blkio.throttle.read_bps_device nor io.max: %v", when, info.CgroupsPath, err)
		}
		if want := dev + " rbps=1048576 wbps=max riops=max wiops=300"; !strings.Contains(string(b), want) {
			t.Errorf("%s: io.max = %q, want a line %q", when, b, want)
		}
	}
	checkThrottle("after start")
	// A CRI update carries no block I/O: the class's settings stay.
	if err := w.c.Runtime.UpdateContainerResources(ctx, id, &criapi.ContainerResources{Linux: &criapi.LinuxContainerResources{MemoryLimitInBytes: 100 << 20}}); err != nil {
		t.Fatal(err)
	}
	checkThrottle("after a CRI update")
	st, err = w.c.Runtime.ContainerStatus(ctx, id, true)
	if err != nil || !strings.Contains(st.GetInfo()["info"], `"blockioClass":"slow"`) || !strings.Contains(st.GetInfo()["info"], `"throttleReadBpsDevice"`) {
		t.Errorf("after a CRI update the recorded spec lost the class: %v", err)
	}

	_, err = w.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: pod, Config: &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "unknown"}, Image: &criapi.ImageSpec{Image: w.image}, Command: []string{"true"}}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("an unknown block I/O class: %v, want InvalidArgument naming it", err)
	}
}
