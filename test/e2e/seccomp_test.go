package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// seccompProbe prints the container's seccomp mode (of pid 1, the
// container's process, and of the exec'd shell), then tries a user
// namespace (allowed to root without capabilities, so only a filter
// stops it) and a mkdir.
const seccompProbe = `echo "init $(grep Seccomp: /proc/1/status | cut -f2)"
echo "exec $(grep Seccomp: /proc/self/status | cut -f2)"
if out=$(busybox unshare -U true 2>&1); then echo "unshare ok"; else echo "unshare $out"; fi
if out=$(mkdir /tmp/d 2>&1); then echo "mkdir ok"; else echo "mkdir $out"; fi
`

// seccompIn creates and starts a root container with sc in pod and runs
// seccompProbe in it with ExecSync.
func (w *podWorld) seccompIn(t *testing.T, podID string, pod *criapi.PodSandboxConfig, name string, sc *criapi.LinuxContainerSecurityContext) map[string]string {
	t.Helper()
	sc.RunAsUser = &criapi.Int64Value{Value: 0}
	sc.NamespaceOptions = &criapi.NamespaceOption{Pid: criapi.NamespaceMode_CONTAINER}
	id := w.startSleeper(t, podID, pod, name, &criapi.ContainerConfig{Linux: &criapi.LinuxContainerConfig{SecurityContext: sc}})
	return w.probe(t, id, name, seccompProbe)
}

func checkProbe(t *testing.T, name string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if !strings.Contains(got[k], v) {
			t.Errorf("%s, %s: %q, want %q", name, k, got[k], v)
		}
	}
}

// TestSeccompProfiles: RuntimeDefault, a Localhost profile, Unconfined and
// no profile, on the container and on the pod; a privileged container
// ignores its profile; the exec'd processes have the container's filter.
func TestSeccompProfiles(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	profile := filepath.Join(t.TempDir(), "block-mkdir.json")
	// EXDEV: an errno no filesystem here would return for mkdir.
	if err := os.WriteFile(profile, []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	local := &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: profile}
	pod, podID := w.runPod(t, "seccomp", criapi.NamespaceMode_CONTAINER)

	got := w.seccompIn(t, podID, pod, "unconfined", &criapi.LinuxContainerSecurityContext{
		Seccomp: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Unconfined}})
	checkProbe(t, "unconfined", got, map[string]string{"init": "0", "exec": "0", "unshare": "ok", "mkdir": "ok"})
	got = w.seccompIn(t, podID, pod, "none", &criapi.LinuxContainerSecurityContext{})
	checkProbe(t, "no profile", got, map[string]string{"init": "0", "exec": "0", "unshare": "ok"})

	got = w.seccompIn(t, podID, pod, "default", &criapi.LinuxContainerSecurityContext{
		Seccomp: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}})
	checkProbe(t, "RuntimeDefault", got, map[string]string{"init": "2", "exec": "2", "unshare": "Operation not permitted", "mkdir": "ok"})

	got = w.seccompIn(t, podID, pod, "localhost", &criapi.LinuxContainerSecurityContext{Seccomp: local})
	checkProbe(t, "Localhost", got, map[string]string{"init": "2", "exec": "2", "unshare": "ok", "mkdir": "cross-device link"})

	// The pod's profile applies to a container that sets none, even when
	// CreateContainer's copy of the pod config leaves it out: the pod's
	// record decides.
	dpod := w.podConfig("seccomp-pod", criapi.NamespaceMode_CONTAINER)
	dpod.Linux.SecurityContext.Seccomp = &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}
	dpodID, err := w.c.Runtime.RunPodSandbox(ctx, dpod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.c.Runtime.StopPodSandbox(context.Background(), dpodID)
		_ = w.c.Runtime.RemovePodSandbox(context.Background(), dpodID)
	})
	stripped := w.podConfig("seccomp-pod", criapi.NamespaceMode_CONTAINER)
	stripped.Metadata = dpod.Metadata
	got = w.seccompIn(t, dpodID, stripped, "from-pod", &criapi.LinuxContainerSecurityContext{})
	checkProbe(t, "pod RuntimeDefault", got, map[string]string{"init": "2", "exec": "2", "unshare": "Operation not permitted"})

	// Privileged: no filter, whatever the container and the pod say.
	ppod := w.podConfig("seccomp-privileged", criapi.NamespaceMode_CONTAINER)
	ppod.Linux.SecurityContext.Privileged = true
	ppod.Linux.SecurityContext.Seccomp = local
	ppodID, err := w.c.Runtime.RunPodSandbox(ctx, ppod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.c.Runtime.StopPodSandbox(context.Background(), ppodID)
		_ = w.c.Runtime.RemovePodSandbox(context.Background(), ppodID)
	})
	got = w.seccompIn(t, ppodID, ppod, "privileged", &criapi.LinuxContainerSecurityContext{Privileged: true, Seccomp: local})
	checkProbe(t, "privileged", got, map[string]string{"init": "0", "exec": "0", "mkdir": "ok"})

	// A pod-level Localhost path that is not absolute is refused at once.
	rpod := w.podConfig("seccomp-relative", criapi.NamespaceMode_CONTAINER)
	rpod.Linux.SecurityContext.Seccomp = &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "rel/p.json"}
	if id, err := w.c.Runtime.RunPodSandbox(ctx, rpod, ""); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "rel/p.json") {
		_ = w.c.Runtime.RemovePodSandbox(ctx, id)
		t.Errorf("pod with a relative localhost profile: %v, want InvalidArgument naming it", err)
	}

	// A relative or missing Localhost profile is the client's error.
	for _, ref := range []string{"profiles/block.json", filepath.Join(t.TempDir(), "missing.json")} {
		_, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: "bad"}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"true"}, Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{
				Seccomp: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: ref}}},
		}, pod)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), ref) {
			t.Errorf("localhost profile %q: %v, want InvalidArgument naming it", ref, err)
		}
	}
}

// TestSeccompStreamingExec: a streaming exec (kubectl exec) gets the
// container's filter too; the daemon starts it, not the shim.
func TestSeccompStreamingExec(t *testing.T) {
	p := startHostPod(t, func(c *criapi.ContainerConfig) {
		c.Linux.SecurityContext.Seccomp = &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}
	}, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, errs, err := execStream(ctx, p.c, p.id, "", "sh", "-c",
		`grep Seccomp: /proc/self/status | cut -f2; busybox unshare -U true 2>&1 || true`)
	if err != nil {
		t.Fatalf("exec: %v (stderr %q)", err, errs)
	}
	if !strings.HasPrefix(out, "2\n") || !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("streaming exec output %q: want seccomp mode 2 and unshare refused", out)
	}
}
