package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/testregistry"
)

// hostTmpName is a name under the host's /tmp that nothing else uses; the
// test removes it whatever happens, since a regression would create it.
func hostTmpName(t *testing.T, what string) string {
	t.Helper()
	name := fmt.Sprintf("crib-e2e-pause-%s-%x", what, rand.Int64())
	t.Cleanup(func() { _ = os.RemoveAll("/tmp/" + name) })
	return name
}

// pausePid is the pid of the pod's pause process, from its verbose status.
func pausePid(t *testing.T, w *podWorld, podID string) int {
	t.Helper()
	st, err := w.c.RawRt.PodSandboxStatus(context.Background(), &criapi.PodSandboxStatusRequest{PodSandboxId: podID, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := infoPid(t, verboseInfo(t, st.Info))
	if pid <= 0 {
		t.Fatalf("pod %s has no pause process (pid %d)", podID, pid)
	}
	return pid
}

func execIn(t *testing.T, w *podWorld, id string, cmd ...string) *criapi.ExecSyncResponse {
	t.Helper()
	resp, err := w.c.RawRt.ExecSync(context.Background(), &criapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil {
		t.Fatalf("exec %q in %s: %v", cmd, id, err)
	}
	return resp
}

// TestSharedPIDPauseHidesTheHost: in a pod that shares its pid namespace
// the pause process is every container's pid 1, and /proc/1/root was the
// host's /. A debug container with SYS_PTRACE must find an empty read-only
// root there, not the host's files.
func TestSharedPIDPauseHidesTheHost(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "ptrace", criapi.NamespaceMode_POD)
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "debug"}, Image: &criapi.ImageSpec{Image: w.image},
		Command: []string{"sleep", "3600"},
		Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{
			Capabilities: &criapi.Capability{AddCapabilities: []string{"SYS_PTRACE"}},
		}},
	}, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The capability is there: pid 1's root is reachable, and it is empty.
	if r := execIn(t, w, id, "ls", "-A", "/proc/1/root/"); r.ExitCode != 0 || len(r.Stdout) != 0 {
		t.Errorf("ls -A /proc/1/root/: exit %d, stdout %q, stderr %q; want an empty listing", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := execIn(t, w, id, "cat", "/proc/1/root/etc/hostname"); r.ExitCode == 0 {
		t.Errorf("read the host's /etc/hostname through /proc/1/root: %q", r.Stdout)
	}
	name := hostTmpName(t, "ptrace")
	for _, cmd := range [][]string{{"touch", "/proc/1/root/tmp/" + name}, {"mkdir", "/proc/1/root/" + name}} {
		if r := execIn(t, w, id, cmd...); r.ExitCode == 0 {
			t.Errorf("%q succeeded, want a read-only root", cmd)
		}
	}
	for _, p := range []string{"/tmp/" + name, "/" + name} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			_ = os.RemoveAll(p)
			t.Errorf("the container created %s on the host (%v)", p, err)
		}
	}
}

// TestSharedPIDHostileWorkdir: a working directory under /proc/1/root —
// from the CRI request or from the image's WORKDIR — must not reach the
// host, even though the init resolving it is root with every capability.
// The start may fail, or the directory may land in the pause's empty root;
// either way nothing appears on the host.
func TestSharedPIDHostileWorkdir(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "workdir", criapi.NamespaceMode_POD)
	imageDir := hostTmpName(t, "image")
	img := testregistry.Busybox(t, "")
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.WorkingDir = "/proc/1/root/tmp/" + imageDir
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref, _ := w.reg.Push(t, "e2e/workdir:1", img)
	ref = strings.Replace(ref, w.reg.Host, w.regHost, 1)
	if _, err := w.c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}
	uid1000 := &criapi.LinuxContainerSecurityContext{RunAsUser: &criapi.Int64Value{Value: 1000}}
	for _, tc := range []struct {
		name, image, dir string // dir: the host directory it must not create, under /tmp
		workingDir       string
		sc               *criapi.LinuxContainerSecurityContext
	}{
		{name: "cri", image: w.image, dir: hostTmpName(t, "cri")},
		{name: "cri-uid1000", image: w.image, dir: hostTmpName(t, "uid"), sc: uid1000},
		{name: "image", image: ref, dir: imageDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &criapi.ContainerConfig{
				Metadata: &criapi.ContainerMetadata{Name: tc.name}, Image: &criapi.ImageSpec{Image: tc.image},
				Command: []string{"sh", "-c", "touch file; sleep 3600"},
				Linux:   &criapi.LinuxContainerConfig{SecurityContext: tc.sc},
			}
			if tc.image == w.image {
				c.WorkingDir = "/proc/1/root/tmp/" + tc.dir
			}
			id, err := w.c.Runtime.CreateContainer(ctx, podID, c, pod)
			if err == nil {
				err = w.c.Runtime.StartContainer(ctx, id)
			}
			t.Logf("create and start with working directory /proc/1/root/tmp/%s: %v", tc.dir, err)
			if _, err := os.Lstat("/tmp/" + tc.dir); !os.IsNotExist(err) {
				t.Errorf("the container's working directory was made on the host at /tmp/%s (%v)", tc.dir, err)
			}
		})
	}
}

// TestSharedPIDPauseConfined: the pause holds no capability, cannot gain
// any, and still does a pid 1's work: an orphan of a container is reparented
// to it and reaped, and the pod stops cleanly.
func TestSharedPIDPauseConfined(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "confined", criapi.NamespaceMode_POD)
	pid := pausePid(t, w, podID)
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if v := capLine(string(status), f); strings.Trim(v, "0") != "" {
			t.Errorf("pause %s %q, want none", f, v)
		}
	}
	if v := capLine(string(status), "NoNewPrivs"); v != "1" {
		t.Errorf("pause NoNewPrivs %q, want 1", v)
	}
	// The inner shell leaves "sleep 2" behind and exits: the orphan goes to
	// pid 1 of the pod, which must reap it when it ends.
	w.container(t, podID, pod, "orphans", "sh", "-c", `sh -c "sleep 2 &"; sleep 3600`)
	children := func() []string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		return strings.Fields(string(b))
	}
	var orphan string
	waitFor(t, func() bool {
		for _, c := range children() {
			if cmd, _ := os.ReadFile("/proc/" + c + "/cmdline"); string(cmd) == "sleep\x002\x00" {
				orphan = c
				return true
			}
		}
		return false
	}, "the orphaned sleep to become a child of the pause")
	waitFor(t, func() bool {
		for _, c := range children() {
			if c == orphan {
				return false
			}
		}
		return true
	}, "the pause to reap its orphan "+orphan)
	// The pause goes with the pod's shim, at removal.
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return os.IsNotExist(err)
	}, "the pause to go with its pod")
}
