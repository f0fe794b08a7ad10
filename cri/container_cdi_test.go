package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/internal/cdi"
)

func TestApplyCDI(t *testing.T) {
	dir := t.TempDir()
	vendor := `cdiVersion: "0.7.0"
kind: crib.test/unit
devices:
- name: env
  containerEdits: {env: [CRIB_UNIT=1]}
- name: tmpfs
  containerEdits:
    mounts: [{hostPath: tmpfs, containerPath: /scratch, type: tmpfs}]
- name: video
  containerEdits: {additionalGids: [44]}
`
	if err := os.WriteFile(filepath.Join(dir, "unit.yaml"), []byte(vendor), 0o600); err != nil {
		t.Fatal(err)
	}
	in := func(names ...string) spec.Input {
		cfg := &criapi.ContainerConfig{Metadata: &criapi.ContainerMetadata{Name: "c"}}
		for _, n := range names {
			cfg.CDIDevices = append(cfg.CDIDevices, &criapi.CDIDevice{Name: n})
		}
		return spec.Input{ID: strings.Repeat("c", 64), Config: cfg, Stat: statHost}
	}
	newSpec := func() *specs.Spec { return &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}} }
	ctx := context.Background()

	with := &Server{cdi: cdi.New([]string{dir})}
	s := newSpec()
	got, err := with.applyCDI(ctx, in("crib.test/unit=env"), s)
	if err != nil || len(got) != 1 || got[0] != "crib.test/unit=env" || len(s.Process.Env) != 1 || s.Process.Env[0] != "CRIB_UNIT=1" {
		t.Fatalf("applyCDI = %q, %v; env %q", got, err, s.Process.Env)
	}
	if got, err := with.applyCDI(ctx, in(), newSpec()); err != nil || got != nil {
		t.Errorf("no devices: %q, %v", got, err)
	}
	// What the edits add goes through cri/spec's checks.
	_, err = with.applyCDI(ctx, in("crib.test/unit=tmpfs"), newSpec())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "/scratch") {
		t.Errorf("tmpfs mount: %v, want FailedPrecondition naming /scratch", err)
	}
	// Groups a device adds are refused under the Strict policy, which
	// means the request's groups and no others.
	strict := in("crib.test/unit=video")
	strict.Config.Linux = &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{
		SupplementalGroupsPolicy: criapi.SupplementalGroupsPolicy_Strict}}
	_, err = with.applyCDI(ctx, strict, newSpec())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "[44]") || !strings.Contains(err.Error(), "Strict") {
		t.Errorf("gids under Strict: %v, want FailedPrecondition naming group 44", err)
	}
	if _, err := with.applyCDI(ctx, in("crib.test/unit=video"), newSpec()); err != nil {
		t.Errorf("gids under Merge: %v", err)
	}
	// A server without CDI refuses, naming the device.
	_, err = (&Server{}).applyCDI(ctx, in("crib.test/unit=env"), newSpec())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "crib.test/unit=env") {
		t.Errorf("no CDI: %v, want FailedPrecondition naming the device", err)
	}
}
