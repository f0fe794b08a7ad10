package cri

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/config"
)

// TestSandboxCgroups: the pod's cgroup parent and its own cgroup (the
// pause's) as each driver names them.
func TestSandboxCgroups(t *testing.T) {
	for _, tc := range []struct {
		driver, parent string
		want, pod      string // "{id}" stands for the pod's id
		kind           error
	}{
		{"cgroupfs", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1/{id}", nil},
		{"cgroupfs", "", "/crib/pod{id}", "/crib/pod{id}/{id}", nil},
		{"systemd", "kubepods-burstable-pod1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crib-{id}.scope", nil},
		{"systemd", "", "/crib.slice/crib-pod{id}.slice", "/crib.slice/crib-pod{id}.slice/crib-{id}.scope", nil},
		{"systemd", "/kubepods/burstable/pod1", "", "", errdefs.ErrFailedPrecondition},
		{"cgroupfs", "kubepods-burstable-pod1.slice", "", "", errdefs.ErrFailedPrecondition},
		{"systemd", "kubepods--pod1.slice", "", "", errdefs.ErrInvalidArgument},
	} {
		cfg := &criapi.PodSandboxConfig{
			Metadata: &criapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux:    &criapi.LinuxPodSandboxConfig{CgroupParent: tc.parent},
		}
		s := &Server{opts: Options{CgroupDriver: tc.driver, CgroupRoot: "/crib"}}
		c, err := toSandboxConfig(cfg, s.cgroupPaths())
		if tc.kind != nil {
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.parent) {
				t.Errorf("%s %q: %v, want %v naming the parent", tc.driver, tc.parent, err, tc.kind)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s %q: %v", tc.driver, tc.parent, err)
		}
		want, pod := strings.ReplaceAll(tc.want, "{id}", c.ID), strings.ReplaceAll(tc.pod, "{id}", c.ID)
		if c.CgroupParent != want || c.Cgroup != pod {
			t.Errorf("%s %q: parent %q, pod cgroup %q; want %q, %q", tc.driver, tc.parent, c.CgroupParent, c.Cgroup, want, pod)
		}
	}
}

// TestRuntimeConfigDriver: the kubelet refuses to start when crib reports
// another driver than its own.
func TestRuntimeConfigDriver(t *testing.T) {
	for driver, want := range map[string]criapi.CgroupDriver{
		config.CgroupDriverSystemd: criapi.CgroupDriver_SYSTEMD, config.CgroupDriverCgroupfs: criapi.CgroupDriver_CGROUPFS,
	} {
		s := &Server{opts: Options{CgroupDriver: driver}}
		resp, err := s.RuntimeConfig(t.Context(), &criapi.RuntimeConfigRequest{})
		if err != nil || resp.GetLinux().GetCgroupDriver() != want {
			t.Errorf("RuntimeConfig with %s = %v, %v; want %v", driver, resp, err, want)
		}
	}
	if cgroups.DriverSystemd != config.CgroupDriverSystemd || cgroups.DriverCgroupfs != config.CgroupDriverCgroupfs {
		t.Error("cgroups and config spell the drivers differently")
	}
}
