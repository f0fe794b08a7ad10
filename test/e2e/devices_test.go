package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// probeDevices is run in a container as root: each line says whether a
// device could be opened ("ok") or why not (busybox prints strerror). dd
// with count=0 opens its files and transfers nothing, so no device blocks.
const probeDevices = `
try() { if out=$(dd "$2" bs=1 count=0 2>&1); then echo "$1 ok"; else echo "$1 $out"; fi; }
busybox mknod /tmp/vcs c 7 0 && echo "mknod-vcs ok"
busybox mknod /tmp/sda b 8 0 && echo "mknod-sda ok"
try vcs if=/tmp/vcs
try sda if=/tmp/sda
try null if=/dev/null
try null-w of=/dev/null
try zero if=/dev/zero
try urandom if=/dev/urandom
try random if=/dev/random
try full of=/dev/full
try ptmx if=/dev/ptmx
try tty if=/dev/tty
[ -e /dev/mynull ] && try mynull of=/dev/mynull
[ -e /dev/myvcs ] && try myvcs-r if=/dev/myvcs && try myvcs-w of=/dev/myvcs
[ -e /dev/kmsg ] && try kmsg if=/dev/kmsg
[ -e /dev/loop-control ] && try loopctl if=/dev/loop-control
true
`

// probeIn runs probeDevices in a new root container of pod and returns a
// map from each probe to its outcome.
func (w *podWorld) probeIn(t *testing.T, podID string, pod *criapi.PodSandboxConfig, name string, sc *criapi.LinuxContainerSecurityContext, devs []*criapi.Device) map[string]string {
	t.Helper()
	sc.RunAsUser = &criapi.Int64Value{Value: 0}
	id := w.startSleeper(t, podID, pod, name, &criapi.ContainerConfig{Devices: devs, Linux: &criapi.LinuxContainerConfig{SecurityContext: sc}})
	return w.probe(t, id, name, probeDevices)
}

const eperm = "Operation not permitted"

// TestDeviceCgroup: a root container (CAP_MKNOD is a default capability)
// can make a /dev/vcs or disk node but not open it; the default list opens;
// CRI devices are allowed with their permissions (host /dev/vcs1 as
// /dev/myvcs, read only); a privileged container opens any device node and
// has the host's (/dev/kmsg, /dev/loop-control), which a plain one lacks.
func TestDeviceCgroup(t *testing.T) {
	w := newPodWorld(t)
	pod, podID := w.runPod(t, "devices", criapi.NamespaceMode_CONTAINER)

	plain := w.probeIn(t, podID, pod, "plain", &criapi.LinuxContainerSecurityContext{}, []*criapi.Device{
		{ContainerPath: "/dev/mynull", HostPath: "/dev/null", Permissions: "rw"},
		{ContainerPath: "/dev/myvcs", HostPath: "/dev/vcs1", Permissions: "r"},
	})
	for probe, want := range map[string]string{
		"mknod-vcs": "ok", "mknod-sda": "ok", "vcs": eperm, "sda": eperm,
		"null": "ok", "null-w": "ok", "zero": "ok", "urandom": "ok", "random": "ok", "full": "ok", "ptmx": "ok",
		"mynull": "ok", "myvcs-r": "ok", "myvcs-w": eperm,
	} {
		if g := plain[probe]; !strings.Contains(g, want) {
			t.Errorf("plain container, %s: %q, want %q", probe, g, want)
		}
	}
	// /dev/tty is allowed: without a controlling terminal the driver,
	// not the device cgroup, refuses it.
	if strings.Contains(plain["tty"], eperm) {
		t.Errorf("plain container, tty: %q, want allowed by the device cgroup", plain["tty"])
	}

	ppod := w.podConfig("privileged", criapi.NamespaceMode_CONTAINER)
	ppod.Linux.SecurityContext.Privileged = true
	ppodID, err := w.c.Runtime.RunPodSandbox(context.Background(), ppod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.c.Runtime.StopPodSandbox(context.Background(), ppodID)
		_ = w.c.Runtime.RemovePodSandbox(context.Background(), ppodID)
	})
	got := w.probeIn(t, ppodID, ppod, "privileged", &criapi.LinuxContainerSecurityContext{Privileged: true}, nil)
	for _, probe := range []string{"vcs", "null", "zero"} {
		if got[probe] != "ok" {
			t.Errorf("privileged container, %s: %q, want ok", probe, got[probe])
		}
	}
	// The host's own nodes: a privileged container gets them (CRI), a
	// plain one has none of them.
	for probe, node := range map[string]string{"kmsg": "/dev/kmsg", "loopctl": "/dev/loop-control"} {
		if _, err := os.Stat(node); err != nil {
			t.Fatalf("this test needs the host's %s: %v", node, err)
		}
		if got[probe] != "ok" {
			t.Errorf("privileged container, host's %s: %q, want ok", node, got[probe])
		}
		if g, ok := plain[probe]; ok {
			t.Errorf("plain container has the host's %s: %q", node, g)
		}
	}
	if strings.Contains(got["sda"], eperm) {
		t.Errorf("privileged container, sda: %q, want the device cgroup to allow it", got["sda"])
	}
}
