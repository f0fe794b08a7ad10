package cri

import (
	"context"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/internal/config"
)

// RuntimeConfig tells the kubelet which cgroup driver crib uses; the kubelet
// refuses to start when its own setting differs.
func (s *Server) RuntimeConfig(context.Context, *criapi.RuntimeConfigRequest) (*criapi.RuntimeConfigResponse, error) {
	driver := criapi.CgroupDriver_CGROUPFS
	if s.opts.CgroupDriver == config.CgroupDriverSystemd {
		driver = criapi.CgroupDriver_SYSTEMD
	}
	return &criapi.RuntimeConfigResponse{
		Linux: &criapi.LinuxRuntimeConfiguration{CgroupDriver: driver},
	}, nil
}
