package nri

import (
	"testing"

	"github.com/containerd/nri/pkg/api"
)

// emptyReply is the adjustment the adaptation answers with when no plugin
// changed anything: every part present and empty.
func emptyReply() *api.ContainerAdjustment {
	return &api.ContainerAdjustment{
		Annotations: map[string]string{}, Mounts: []*api.Mount{}, Env: []*api.KeyValue{}, Hooks: &api.Hooks{},
		Rlimits: []*api.POSIXRlimit{}, CDIDevices: []*api.CDIDevice{},
		Linux: &api.LinuxContainerAdjustment{
			Devices: []*api.LinuxDevice{},
			Resources: &api.LinuxResources{Memory: &api.LinuxMemory{}, Cpu: &api.LinuxCPU{},
				HugepageLimits: []*api.HugepageLimit{}, Unified: map[string]string{}},
			Namespaces: []*api.LinuxNamespace{}, NetDevices: map[string]*api.LinuxNetDevice{}, Sysctl: map[string]string{},
		},
	}
}

func TestAdjustEmpty(t *testing.T) {
	s := goldenSpec(t)
	if err := Adjust(s, emptyReply(), Resolvers{}); err != nil {
		t.Fatal(err)
	}
}
