package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/internal/errcode"
)

// TestUpdateRuntimeConfig: the kubelet's pod CIDRs (one, dual-stack, none)
// are taken and kept; a malformed one is InvalidArgument and leaves the last
// good value.
func TestUpdateRuntimeConfig(t *testing.T) {
	s := &Server{}
	update := func(cidrs string) error {
		_, err := s.UpdateRuntimeConfig(context.Background(), &criapi.UpdateRuntimeConfigRequest{
			RuntimeConfig: &criapi.RuntimeConfig{NetworkConfig: &criapi.NetworkConfig{PodCidr: cidrs}},
		})
		return err
	}
	for _, ok := range []string{"10.244.1.0/24", "10.244.1.0/24,fd00:10:244:1::/64", ""} {
		if err := update(ok); err != nil {
			t.Fatalf("%q: %v", ok, err)
		}
		if got := *s.podCIDRs.Load(); got != ok {
			t.Fatalf("%q: kept %q", ok, got)
		}
	}
	if err := update("10.244.1.0/24"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"10.244.1.0", "10.244.1.0/24,", "not-a-cidr"} {
		if err := update(bad); errcode.Code(err) != codes.InvalidArgument {
			t.Errorf("%q: %v, want InvalidArgument", bad, err)
		}
	}
	if got := *s.podCIDRs.Load(); got != "10.244.1.0/24" {
		t.Errorf("after refusals: kept %q", got)
	}
	// A request without a runtime config, as an old client may send.
	if _, err := s.UpdateRuntimeConfig(context.Background(), &criapi.UpdateRuntimeConfigRequest{}); err != nil {
		t.Errorf("empty request: %v", err)
	}
}
