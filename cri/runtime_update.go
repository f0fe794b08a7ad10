package cri

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// UpdateRuntimeConfig takes the node's pod CIDRs, which the kubelet sends
// once the controller manager has given the node its range and again when
// they change (after a failure, at every node status sync until one
// succeeds). crib's pod network comes from the CNI configuration as written
// (crib renders no CNI template from the CIDR, as CRI-O does not): the
// CIDRs are checked and logged when they change, and the call succeeds, so
// that the kubelet does not retry and log a failure every sync.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *criapi.UpdateRuntimeConfigRequest) (*criapi.UpdateRuntimeConfigResponse, error) {
	cidrs := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if err := checkPodCIDRs(cidrs); err != nil {
		return nil, err
	}
	if prev := s.podCIDRs.Swap(&cidrs); prev == nil || *prev != cidrs {
		klog.FromContext(ctx).Info("Node's pod CIDRs", "podCIDR", cidrs)
	}
	return &criapi.UpdateRuntimeConfigResponse{}, nil
}

// checkPodCIDRs accepts "" or a comma-separated list of CIDRs.
func checkPodCIDRs(cidrs string) error {
	if cidrs == "" {
		return nil
	}
	for c := range strings.SplitSeq(cidrs, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return fmt.Errorf("update runtime config: pod CIDR %q: %w", c, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
