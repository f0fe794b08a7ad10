package cri

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
)

// TestRunPodSandboxChecksPodUser: the pod-level user fields are validated
// when the pod is made (the CRI's "runtime MUST error" for a run_as_group
// without run_as_user), with an InvalidArgument naming the field.
func TestRunPodSandboxChecksPodUser(t *testing.T) {
	i64 := func(v int64) *criapi.Int64Value { return &criapi.Int64Value{Value: v} }
	for _, tc := range []struct {
		name    string
		sc      *criapi.LinuxSandboxSecurityContext
		mention string // "" means accepted
	}{
		{name: "none", sc: nil},
		{name: "user, group and groups", sc: &criapi.LinuxSandboxSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{2000}}},
		{name: "strict", sc: &criapi.LinuxSandboxSecurityContext{SupplementalGroupsPolicy: criapi.SupplementalGroupsPolicy_Strict}},
		{name: "group without user", sc: &criapi.LinuxSandboxSecurityContext{RunAsGroup: i64(3000)}, mention: "run_as_group is set without run_as_user"},
		{name: "negative user", sc: &criapi.LinuxSandboxSecurityContext{RunAsUser: i64(-1)}, mention: "run_as_user -1"},
		{name: "group -1 as uint32", sc: &criapi.LinuxSandboxSecurityContext{RunAsUser: i64(0), RunAsGroup: i64(4294967295)}, mention: "run_as_group 4294967295"},
		{name: "negative supplemental group", sc: &criapi.LinuxSandboxSecurityContext{SupplementalGroups: []int64{5, -2}}, mention: "supplemental group -2"},
		{name: "unknown policy", sc: &criapi.LinuxSandboxSecurityContext{SupplementalGroupsPolicy: 9}, mention: "supplemental_groups_policy 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &criapi.PodSandboxConfig{
				Metadata: &criapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
				Linux:    &criapi.LinuxPodSandboxConfig{SecurityContext: tc.sc},
			}
			_, err := toSandboxConfig(cfg, cgroups.Paths{Driver: cgroups.DriverCgroupfs, Root: "/crib"})
			if tc.mention == "" {
				if err != nil {
					t.Fatalf("toSandboxConfig: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("error = %v, want InvalidArgument mentioning %q", err, tc.mention)
			}
		})
	}
}

// TestStatusAdvertisesSupplementalGroupsPolicy: without the feature in
// Status the kubelet refuses Strict pods, and critest skips its
// SupplementalGroupsPolicy specs.
func TestStatusAdvertisesSupplementalGroupsPolicy(t *testing.T) {
	s := &Server{network: readyNetwork{}}
	resp, err := s.Status(t.Context(), &criapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Errorf("Status features = %v, want supplemental_groups_policy", resp.GetFeatures())
	}
}
