package main

import (
	"context"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/shimclient"
	"github.com/crib-runtime/crib/sandbox"
)

// hookShims makes the pods' shims part of the pod's lifecycle: started with
// its pause process in Run, stopped by a Run that fails after that.
func hookShims(pods *sandbox.Manager, shims *shimclient.Shims) {
	pods.AfterSetup = func(ctx context.Context, p *sandbox.Pod) (err error) {
		var pause *shimclient.Pause
		if p.SharePID {
			pause = &shimclient.Pause{Cgroup: p.Cgroup,
				Namespaces: map[string]string{"net": p.NetNS, "ipc": p.IPCNS, "uts": p.UTSNS, "user": p.UserNS}}
		}
		p.PausePID, err = shims.Start(ctx, p.ID, pause)
		return err
	}
	// Only a Run that fails after the shim started (the pod still
	// CREATING) stops it here: Stop keeps the shim, which holds the exit
	// codes until RemovePodSandbox shuts it down.
	pods.BeforeTeardown = func(ctx context.Context, p *sandbox.Pod) error {
		if p.State != sandbox.StateCreating {
			return nil
		}
		return shims.Shutdown(ctx, p.ID)
	}
}

// containerShims are the shims as runtime.Manager takes them (runtime.Shims
// and its attach sockets): Go has no covariant results, so Client's
// *shimapi.Client is handed on as a runtime.Shim here.
type containerShims struct{ *shimclient.Shims }

func (s containerShims) Shim(ctx context.Context, podID string) (runtime.Shim, error) {
	c, err := s.Client(ctx, podID)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}
