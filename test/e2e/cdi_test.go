package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// cdiVendorSpec is a vendor's CDI spec as a device plugin would install it:
// the host's /dev/null under another name, the host's /dev/vcs1 (which the
// default device cgroup denies) read-only, env and a read-only bind of a
// host directory; a device whose edits add a createContainer hook, which
// crib runs in the container's namespaces before pivot_root, with the
// rootfs as its working directory.
const cdiVendorSpec = `cdiVersion: "0.6.0"
kind: crib.test/device
devices:
- name: null0
  containerEdits:
    deviceNodes: [{path: /dev/crib-null0, hostPath: /dev/null}]
    env: [CRIB_CDI=null0]
    mounts: [{hostPath: %q, containerPath: /cdi-data, options: [ro, rbind, nosuid, nodev]}]
- name: vcs
  containerEdits:
    deviceNodes: [{path: /dev/crib-vcs, hostPath: /dev/vcs1, permissions: r}]
- name: hooked
  containerEdits:
    env: [CRIB_HOOKED=1]
    hooks: [{hookName: createContainer, path: %q, args: [crib-test-hook, ran]}]
`

// TestCDIDevices: devices named in CRI cdi_devices and in a cdi.k8s.io/
// annotation are resolved against the spec directory the config names;
// the container gets the node (right type and numbers, usable through the
// device cgroup), the env and the read-only mount, and verbose status
// names the devices; a device's hook runs. An unknown device and a
// malformed annotation are refused, naming them, and leave no container
// behind.
func TestCDIDevices(t *testing.T) {
	if _, err := os.Stat("/dev/vcs1"); err != nil {
		t.Fatalf("the test needs the host's /dev/vcs1: %v", err)
	}
	specDir, data := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "hello"), []byte("from-the-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(data, "crib-test-hook")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho \"$1 $PPID\" > ./cdi-hook\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(specDir, "crib-test.yaml"), fmt.Appendf(nil, cdiVendorSpec, data, hook), 0o644); err != nil {
		t.Fatal(err)
	}
	// A broken file of another vendor is logged, not fatal.
	if err := os.WriteFile(filepath.Join(specDir, "broken.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := newPodWorldWith(t, func(e *harness.Env) {
		e.WriteConfig(fmt.Sprintf("\n[cdi]\nspec_dirs = [%q, %q]\n", filepath.Join(specDir, "absent"), specDir))
	})
	ctx := context.Background()
	pod, podID := w.runPod(t, "cdi", criapi.NamespaceMode_CONTAINER)
	root := func() *criapi.LinuxContainerConfig {
		return &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{RunAsUser: &criapi.Int64Value{Value: 0}}}
	}

	byCRI := w.startSleeper(t, podID, pod, "by-cri", &criapi.ContainerConfig{Linux: root(),
		CDIDevices: []*criapi.CDIDevice{{Name: "crib.test/device=null0"}, {Name: "crib.test/device=vcs"}}})
	byAnnotation := w.startSleeper(t, podID, pod, "by-annotation", &criapi.ContainerConfig{Linux: root(),
		Annotations: map[string]string{"cdi.k8s.io/crib-test": "crib.test/device=null0"}})
	// The hook ran in the container's namespaces (its parent, the init, is
	// pid 1 of the container's pid namespace), in its rootfs, before the
	// container's process started.
	hooked := w.startSleeper(t, podID, pod, "hooked", &criapi.ContainerConfig{Linux: root(),
		CDIDevices: []*criapi.CDIDevice{{Name: "crib.test/device=hooked"}}})
	if got := w.probe(t, hooked, "hooked", `echo "hook $(cat /cdi-hook)"; echo "env $CRIB_HOOKED"`); got["hook"] != "ran 1" || got["env"] != "1" {
		t.Errorf("hooked: hook wrote %q (want \"ran 1\"), env %q", got["hook"], got["env"])
	}

	probe := `
try() { if out=$(dd "$2" bs=1 count=0 2>&1); then echo "$1 ok"; else echo "$1 $out"; fi; }
echo "devno $(stat -c '%t:%T' /dev/crib-null0)"
echo "type $(stat -c '%F' /dev/crib-null0)"
if echo x > /dev/crib-null0; then echo "write ok"; else echo "write failed"; fi
echo "env $CRIB_CDI"
echo "data $(cat /cdi-data/hello)"
if touch /cdi-data/new 2>/dev/null; then echo "rofs writable"; else echo "rofs refused"; fi
echo "mount $(awk '$5 == "/cdi-data" {print $6}' /proc/self/mountinfo)"
[ -e /dev/crib-vcs ] && try vcs-r if=/dev/crib-vcs && try vcs-w of=/dev/crib-vcs
true
`
	probes := map[string]map[string]string{}
	for _, c := range []struct{ id, name string }{{byCRI, "by-cri"}, {byAnnotation, "by-annotation"}} {
		got := w.probe(t, c.id, c.name, probe)
		probes[c.name] = got
		for k, want := range map[string]string{
			"devno": "1:3", "type": "character special file", "write": "ok", "env": "null0",
			"data": "from-the-host", "rofs": "refused",
		} {
			if got[k] != want {
				t.Errorf("%s: %s = %q, want %q", c.name, k, got[k], want)
			}
		}
		if opts := strings.Split(got["mount"], ","); !slices.Contains(opts, "ro") {
			t.Errorf("%s: /cdi-data mount options %q, want ro", c.name, got["mount"])
		}
	}
	// The vcs device only through cdi_devices, with its read-only rule.
	if cri := probes["by-cri"]; cri["vcs-r"] != "ok" || !strings.Contains(cri["vcs-w"], eperm) {
		t.Errorf("by-cri: /dev/crib-vcs read %q (want ok), write %q (want %s)", cri["vcs-r"], cri["vcs-w"], eperm)
	}
	if ann := probes["by-annotation"]; ann["vcs-r"] != "" {
		t.Errorf("by-annotation has /dev/crib-vcs, which it did not ask for: %q", ann["vcs-r"])
	}

	for id, want := range map[string][]string{
		byCRI:        {"crib.test/device=null0", "crib.test/device=vcs"},
		byAnnotation: {"crib.test/device=null0"},
	} {
		cs, err := w.c.Runtime.ContainerStatus(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		raw, _ := verboseInfo(t, cs.GetInfo())["cdiDevices"].([]any)
		for _, d := range raw {
			got = append(got, fmt.Sprint(d))
		}
		if !slices.Equal(got, want) {
			t.Errorf("container %s: info.cdiDevices = %q, want %q", cs.GetStatus().GetMetadata().GetName(), got, want)
		}
	}

	before, err := w.c.Runtime.ListContainers(ctx, &criapi.ContainerFilter{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  *criapi.ContainerConfig
		code codes.Code
		want []string
	}{
		{"unknown", &criapi.ContainerConfig{CDIDevices: []*criapi.CDIDevice{{Name: "crib.test/device=null0"}, {Name: "crib.test/device=gpu9"}}},
			codes.InvalidArgument, []string{"crib.test/device=gpu9", "broken.json"}},
		{"malformed-annotation", &criapi.ContainerConfig{Annotations: map[string]string{"cdi.k8s.io/bad": "gpu9"}},
			codes.InvalidArgument, []string{"cdi.k8s.io/bad", "gpu9"}},
	} {
		tc.cfg.Metadata = &criapi.ContainerMetadata{Name: tc.name}
		tc.cfg.Image = &criapi.ImageSpec{Image: w.image}
		tc.cfg.Command = []string{"sleep", "3600"}
		id, err := w.c.Runtime.CreateContainer(ctx, podID, tc.cfg, pod)
		if status.Code(err) != tc.code {
			t.Errorf("%s: CreateContainer = %q, %v; want %s", tc.name, id, err, tc.code)
			continue
		}
		for _, s := range tc.want {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not name %s", tc.name, err, s)
			}
		}
	}
	after, err := w.c.Runtime.ListContainers(ctx, &criapi.ContainerFilter{PodSandboxId: podID})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(after) != 3 {
		t.Errorf("containers after the refused creates: %d, before %d, want 3", len(after), len(before))
	}
	if logs := w.d.Logs.String(); !strings.Contains(logs, "CDI spec files failed to load") || !strings.Contains(logs, "broken.json") {
		t.Errorf("the daemon's log does not report broken.json")
	}
}
