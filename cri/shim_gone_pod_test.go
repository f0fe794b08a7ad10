package cri

import (
	"context"
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestShimGonePodNotReady: a ready pod whose shim was killed is reported
// not ready, by PodSandboxStatus and by ListPodSandbox (and its state
// filter), so that the kubelet replaces it: none of its containers can
// start again. The fault injection test (test/faults) found such pods
// reported ready.
func TestShimGonePodNotReady(t *testing.T) {
	s, w, _ := newRaceWorld(t)
	ctx := context.Background()
	resp, err := s.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{Config: racePodConfig})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.PodSandboxId
	state := func() criapi.PodSandboxState {
		t.Helper()
		st, err := s.PodSandboxStatus(ctx, &criapi.PodSandboxStatusRequest{PodSandboxId: id})
		if err != nil {
			t.Fatal(err)
		}
		return st.Status.State
	}
	listed := func(want criapi.PodSandboxState) int {
		t.Helper()
		l, err := s.ListPodSandbox(ctx, &criapi.ListPodSandboxRequest{Filter: &criapi.PodSandboxFilter{
			State: &criapi.PodSandboxStateValue{State: want}}})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.Items)
	}
	if got := state(); got != criapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod with its shim: %v", got)
	}
	w.mu.Lock()
	w.shims[id].gone = true // killed
	w.mu.Unlock()
	if got := state(); got != criapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatalf("PodSandboxStatus of a ready pod whose shim is gone: %v, want NOTREADY", got)
	}
	if ready, notReady := listed(criapi.PodSandboxState_SANDBOX_READY), listed(criapi.PodSandboxState_SANDBOX_NOTREADY); ready != 0 || notReady != 1 {
		t.Fatalf("ListPodSandbox by state: %d ready, %d not ready; want 0 and 1", ready, notReady)
	}
}
