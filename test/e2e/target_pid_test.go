package e2e

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestTargetPidNamespace: a container with pid mode TARGET (what the
// kubelet sends for `kubectl debug --target`) joins the pid namespace of
// the target container, whose init is its pid 1; a target that is not
// running, is in another pod or does not exist is refused.
func TestTargetPidNamespace(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "target", criapi.NamespaceMode_CONTAINER)
	create := func(podID string, pod *criapi.PodSandboxConfig, name string, cmd []string, ns *criapi.NamespaceOption) (string, error) {
		return w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image}, Command: cmd,
			Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{NamespaceOptions: ns}},
		}, pod)
	}
	run := func(podID string, pod *criapi.PodSandboxConfig, name string, cmd []string, ns *criapi.NamespaceOption) string {
		t.Helper()
		id, err := create(podID, pod, name, cmd, ns)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		return id
	}
	podNS := &criapi.NamespaceOption{Network: criapi.NamespaceMode_POD, Ipc: criapi.NamespaceMode_POD, Pid: criapi.NamespaceMode_CONTAINER}
	app := run(podID, pod, "app", []string{"sleep", "3601"}, podNS)
	run(podID, pod, "other", []string{"sleep", "3602"}, podNS)
	target := func(id string) *criapi.NamespaceOption {
		return &criapi.NamespaceOption{Network: criapi.NamespaceMode_POD, Ipc: criapi.NamespaceMode_POD,
			Pid: criapi.NamespaceMode_TARGET, TargetId: id}
	}
	debug := run(podID, pod, "debug", []string{"sleep", "3603"}, target(app))

	r := execIn(t, w, debug, "ps", "-o", "pid,args")
	ps := string(r.Stdout)
	t.Logf("ps in the debug container:\n%s", ps)
	if r.ExitCode != 0 {
		t.Fatalf("ps: exit %d, %s", r.ExitCode, r.Stderr)
	}
	if !strings.Contains(ps, "sleep 3601") || !strings.Contains(ps, "sleep 3603") {
		t.Errorf("the debug container does not see the target's process and its own:\n%s", ps)
	}
	if strings.Contains(ps, "sleep 3602") {
		t.Errorf("the debug container sees a container outside its target's pid namespace:\n%s", ps)
	}
	if r := execIn(t, w, debug, "cat", "/proc/1/cmdline"); !strings.Contains(string(r.Stdout), "3601") {
		t.Errorf("pid 1 of the debug container is %q, want the target's sleep 3601", r.Stdout)
	}
	// The target sees the debug container too: one namespace.
	if r := execIn(t, w, app, "ps", "-o", "pid,args"); !strings.Contains(string(r.Stdout), "sleep 3603") {
		t.Errorf("the target does not see the debug container:\n%s", r.Stdout)
	}

	created, err := create(podID, pod, "created", []string{"sleep", "3604"}, podNS)
	if err != nil {
		t.Fatal(err)
	}
	opod, opodID := w.runPod(t, "target-other", criapi.NamespaceMode_CONTAINER)
	elsewhere := run(opodID, opod, "elsewhere", []string{"sleep", "3605"}, podNS)
	for _, tc := range []struct {
		name, target string
		code         codes.Code
		says         string
	}{
		{"not running", created, codes.FailedPrecondition, "not running"},
		{"other pod", elsewhere, codes.NotFound, "not in pod"},
		{"unknown", strings.Repeat("f", 64), codes.NotFound, "not found"},
		{"no target id", "", codes.InvalidArgument, "target_id"},
	} {
		id, err := create(podID, pod, "debug-"+strings.ReplaceAll(tc.name, " ", "-"), []string{"true"}, target(tc.target))
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: container %q, error %v; want %v saying %q", tc.name, id, err, tc.code, tc.says)
		}
	}
}
