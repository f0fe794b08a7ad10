package e2e

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/internal/lsm"
)

// TestLSMRefusedWithoutModule: on a host without AppArmor and SELinux (this
// one), a pod or container that asks for an AppArmor profile or SELinux
// options is refused with FailedPrecondition naming what it asked for,
// never run unconfined; Unconfined and RuntimeDefault, which ask for no
// particular profile, run.
func TestLSMRefusedWithoutModule(t *testing.T) {
	if h := (lsm.Host{}); h.AppArmorEnabled() || h.SELinuxEnabled() {
		t.Fatalf("this test needs a host without AppArmor and SELinux (apparmor %v, selinux %v)", h.AppArmorEnabled(), h.SELinuxEnabled())
	}
	w := newPodWorld(t)
	ctx := context.Background()

	refused := func(what string, err error, says string) {
		t.Helper()
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v; want FailedPrecondition saying %q", what, err, says)
		}
	}
	for _, tc := range []struct {
		name string
		sc   *criapi.LinuxSandboxSecurityContext
		says string
	}{
		{"apparmor", &criapi.LinuxSandboxSecurityContext{Apparmor: &criapi.SecurityProfile{
			ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "pod-profile"}}, `"pod-profile": AppArmor is not enabled on this host`},
		{"selinux", &criapi.LinuxSandboxSecurityContext{SelinuxOptions: &criapi.SELinuxOption{Level: "s0:c1,c2"}}, `":::s0:c1,c2": SELinux is not enabled`},
	} {
		pod := w.podConfig("lsm-pod-"+tc.name, criapi.NamespaceMode_CONTAINER)
		tc.sc.NamespaceOptions = pod.Linux.SecurityContext.NamespaceOptions
		pod.Linux.SecurityContext = tc.sc
		id, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
		if err == nil {
			_ = w.c.Runtime.StopPodSandbox(ctx, id)
			_ = w.c.Runtime.RemovePodSandbox(ctx, id)
		}
		refused("pod with "+tc.name, err, tc.says)
	}

	pod, podID := w.runPod(t, "lsm", criapi.NamespaceMode_CONTAINER)
	create := func(name string, sc *criapi.LinuxContainerSecurityContext) (string, error) {
		return w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"sleep", "3600"}, Linux: &criapi.LinuxContainerConfig{SecurityContext: sc},
		}, pod)
	}
	for _, tc := range []struct {
		name string
		sc   *criapi.LinuxContainerSecurityContext
		says string
	}{
		{"apparmor localhost", &criapi.LinuxContainerSecurityContext{Apparmor: &criapi.SecurityProfile{
			ProfileType: criapi.SecurityProfile_Localhost, LocalhostRef: "my-profile"}}, `"my-profile": AppArmor is not enabled on this host`},
		{"apparmor deprecated", &criapi.LinuxContainerSecurityContext{ApparmorProfile: "localhost/old-profile"}, `"old-profile": AppArmor is not enabled`},
		{"selinux", &criapi.LinuxContainerSecurityContext{SelinuxOptions: &criapi.SELinuxOption{Type: "spc_t"}}, `"::spc_t:": SELinux is not enabled on this host`},
	} {
		id, err := create("refused-"+strings.ReplaceAll(tc.name, " ", "-"), tc.sc)
		refused("container with "+tc.name, err, tc.says)
		if err == nil {
			t.Errorf("container %s created", id)
		}
	}
	for _, tc := range []struct {
		name string
		sc   *criapi.LinuxContainerSecurityContext
	}{
		{"unconfined", &criapi.LinuxContainerSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_Unconfined}}},
		{"runtime-default", &criapi.LinuxContainerSecurityContext{Apparmor: &criapi.SecurityProfile{ProfileType: criapi.SecurityProfile_RuntimeDefault}}},
		{"deprecated-runtime-default", &criapi.LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}},
		{"empty-selinux", &criapi.LinuxContainerSecurityContext{SelinuxOptions: &criapi.SELinuxOption{}}},
	} {
		id, err := create(tc.name, tc.sc)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
			t.Errorf("start %s: %v", tc.name, err)
			continue
		}
		// Nothing was asked of the kernel: the process runs unconfined.
		if r := execIn(t, w, id, "cat", "/proc/self/attr/current"); r.ExitCode == 0 && len(r.Stdout) > 0 && !strings.Contains(string(r.Stdout), "unconfined") {
			t.Errorf("%s: the process runs under %q", tc.name, r.Stdout)
		}
	}
}
