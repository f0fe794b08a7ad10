package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// TestRuntimeHandlers: a configured runtime handler (what a RuntimeClass
// names; the node e2e suite's PodOverhead spec asks for "test-handler")
// runs pods like the default and is reported with them; one not configured
// is NotFound, naming what is.
func TestRuntimeHandlers(t *testing.T) {
	e := harness.NewEnv(t)
	e.TopLevel = "runtime_handlers = [\"test-handler\"]\n"
	e.WriteConfig("")
	c := e.Start().Clients()
	ctx := context.Background()

	st, err := c.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.GetRuntimeHandlers() {
		names = append(names, fmt.Sprintf("%q", h.GetName()))
	}
	if got := strings.Join(names, " "); got != `"" "test-handler"` {
		t.Errorf("Status reports handlers %s, want \"\" and \"test-handler\"", got)
	}

	uid := fmt.Sprintf("%x", rand.Int64())
	pod := &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: "handler", Namespace: "e2e", Uid: uid},
		LogDirectory: filepath.Join(e.Dir, "logs", uid),
		Linux: &criapi.LinuxPodSandboxConfig{SecurityContext: &criapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE}}},
	}
	id, err := c.Runtime.RunPodSandbox(ctx, pod, "test-handler")
	if err != nil {
		t.Fatalf("RunPodSandbox with a configured handler: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Runtime.StopPodSandbox(ctx, id)
		_ = c.Runtime.RemovePodSandbox(ctx, id)
	})
	ps, err := c.Runtime.PodSandboxStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if h := ps.GetStatus().GetRuntimeHandler(); h != "test-handler" {
		t.Errorf("PodSandboxStatus reports handler %q", h)
	}
	pods, err := c.Runtime.ListPodSandbox(ctx, &criapi.PodSandboxFilter{Id: id})
	if err != nil || len(pods) != 1 || pods[0].GetRuntimeHandler() != "test-handler" {
		t.Errorf("ListPodSandbox: %v, %v", pods, err)
	}

	pod.Metadata.Uid += "-2"
	_, err = c.Runtime.RunPodSandbox(ctx, pod, "kata")
	if err == nil || !strings.Contains(err.Error(), `runtime handler "kata" is not configured`) || !strings.Contains(err.Error(), "test-handler") {
		t.Errorf("RunPodSandbox with an unknown handler: %v; want NotFound naming it and the configured ones", err)
	}
}
