package rdtclass

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/nri/pkg/api"
)

// Plugin is the NRI plugin: it asks for CreateContainer only, and sets the
// class its policy chooses.
type Plugin struct {
	mu     sync.RWMutex
	policy *Policy
}

// New returns a plugin with policy p (nil: none until Configure brings
// one, as a runtime-launched plugin gets it from its config file).
func New(p *Policy) *Plugin { return &Plugin{policy: p} }

// Configure takes the policy from the runtime's plugin config file when
// there is one, and subscribes to container creation.
func (pl *Plugin) Configure(_ context.Context, config, _, _ string) (api.EventMask, error) {
	if config != "" {
		p, err := Parse([]byte(config))
		if err != nil {
			return 0, err
		}
		pl.mu.Lock()
		pl.policy = p
		pl.mu.Unlock()
	}
	pl.mu.RLock()
	defer pl.mu.RUnlock()
	if pl.policy == nil {
		return 0, fmt.Errorf("rdt class plugin: no policy (-policy, or the plugin's config file)")
	}
	return api.MustParseEventMask("CreateContainer"), nil
}

// CreateContainer sets the container's RDT class, unless the policy has
// none for its pod, or the pod asked for a class itself (an annotation the
// runtime already applied): an explicit request wins over the default.
func (pl *Plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	if l := ctr.GetLinux(); l.GetResources().GetRdtClass().GetValue() != "" || l.GetRdt().GetClosId().GetValue() != "" {
		return nil, nil, nil
	}
	pl.mu.RLock()
	class := pl.policy.Class(pod.GetNamespace(), pod.GetLinux().GetCgroupParent())
	pl.mu.RUnlock()
	if class == "" {
		return nil, nil, nil
	}
	adj := &api.ContainerAdjustment{}
	adj.SetLinuxRDTClass(class)
	return adj, nil, nil
}
