package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// listTimeout bounds each shim's answer to List. A shim that does not
// answer (wedged) must not hold the daemon's start (WatchRunning lists
// every container) nor the kubelet's relist: its containers are listed
// Unknown, and the other pods' answers are kept. A variable for tests.
var listTimeout = 10 * time.Second

// podStates is what one pod's shim said in List.
type podStates struct {
	byID map[string]*shimapi.ContainerState
	// gone: the shim is gone or its connection broke (its containers
	// exited, reason Unknown); dead: nothing listens on its socket any
	// more, so what its containers left running is killed; silent: it did
	// not answer within listTimeout.
	gone, dead, silent bool
}

// List returns every container with its live state, sorted by creation:
// one List call per pod's shim, not one call per container, the shims
// asked at once.
func (m *Manager) List(ctx context.Context) ([]State, error) {
	m.mu.Lock()
	records := make([]Container, 0, len(m.records))
	for _, c := range m.records {
		records = append(records, *c)
	}
	m.mu.Unlock()
	slices.SortFunc(records, func(a, b Container) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var pods []string
	for _, c := range records {
		if !slices.Contains(pods, c.SandboxID) {
			pods = append(pods, c.SandboxID)
		}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex // guards states and errs
		states = make(map[string]*podStates, len(pods))
		errs   []error
	)
	for _, pod := range pods {
		wg.Go(func() {
			ps, err := m.podStates(ctx, pod)
			mu.Lock()
			defer mu.Unlock()
			states[pod] = ps
			errs = append(errs, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]State, 0, len(records))
	for _, c := range records {
		pod := states[c.SandboxID]
		switch s, ok := pod.byID[c.ID]; {
		case pod.gone:
			if err := m.killIfDead(pod, c); err != nil {
				klog.FromContext(ctx).Error(err, "Container whose shim is gone may still run", "containerID", c.ID)
			}
			out = append(out, fromShim(c, nil))
		case pod.silent:
			out = append(out, unknown(c))
		case ok:
			out = append(out, fromShim(c, s))
		default:
			out = append(out, created(c)) // not handed to the shim yet
		}
	}
	return out, nil
}

// podStates asks a pod's shim for its containers' states.
func (m *Manager) podStates(ctx context.Context, sandboxID string) (*podStates, error) {
	// The caller's own deadline, if sooner, less a margin to answer in: a
	// caller with a short deadline (a metrics scrape, crictl) still gets
	// the silent shim's containers as Unknown, not its own timeout.
	wait := listTimeout
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d)*9/10)
	}
	bounded, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	shim, err := m.shims.Shim(bounded, sandboxID)
	var resp *shimapi.ListResponse
	if err == nil {
		resp, err = shim.List(bounded, &shimapi.Empty{})
	}
	switch {
	case errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, ttrpc.ErrClosed):
		return &podStates{gone: true, dead: errors.Is(err, errdefs.ErrNotFound)}, nil
	case err != nil && ctx.Err() == nil && bounded.Err() != nil:
		// Not logged by the caller, who gets the pod's containers as
		// Unknown, not this error.
		klog.FromContext(ctx).Info("Shim did not answer; its pod's containers are listed Unknown", "podSandboxID", sandboxID, "timeout", listTimeout, "err", err)
		return &podStates{silent: true}, nil
	case err != nil:
		return nil, fmt.Errorf("list containers of pod %s: %w", sandboxID, err)
	}
	byID := make(map[string]*shimapi.ContainerState, len(resp.Containers))
	for _, s := range resp.Containers {
		byID[s.Id] = s
	}
	return &podStates{byID: byID}, nil
}

// killIfDead kills what a container of a pod whose shim is dead left
// running (killOrphans); a broken connection alone kills nothing.
func (m *Manager) killIfDead(pod *podStates, c Container) error {
	if !pod.dead {
		return nil
	}
	return m.killOrphans(c, false)
}
