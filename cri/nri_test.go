package cri

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/sandbox"
)

// creatingSandboxes has one pod being created and one ready.
type creatingSandboxes struct{ fakeSandboxes }

func (f creatingSandboxes) Get(id string) (*sandbox.Pod, error) {
	for _, p := range f.pods {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrNotFound)
}

type noneGone struct{ PodShims }

func (noneGone) Gone(context.Context, string) bool { return false }

// TestPodBeingCreated: a pod in its RunPodSandbox (NRI plugins may still
// refuse it) is in no list, and a container RPC on it fails at once
// instead of waiting for the run to end.
func TestPodBeingCreated(t *testing.T) {
	creating := &sandbox.Pod{ID: "creating", State: sandbox.StateCreating}
	ready := &sandbox.Pod{ID: "ready", State: sandbox.StateReady}
	s := &Server{sandboxes: creatingSandboxes{fakeSandboxes{pods: []*sandbox.Pod{creating, ready}}}, shims: noneGone{}}
	resp, err := s.ListPodSandbox(context.Background(), &criapi.ListPodSandboxRequest{})
	if err != nil || len(resp.GetItems()) != 1 || resp.GetItems()[0].GetId() != "ready" {
		t.Errorf("ListPodSandbox = %v, %v; want the ready pod only", resp.GetItems(), err)
	}
	// The run holds the pod alone; a waiter would block until ctx ends.
	unlock, err := s.podLocks.lock(context.Background(), "creating", true)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.usePod(ctx, "creating"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("usePod on a pod being created = %v, want FailedPrecondition at once", err)
	}
	if unlockReady, err := s.usePod(context.Background(), "ready"); err != nil {
		t.Errorf("usePod on a ready pod: %v", err)
	} else {
		unlockReady()
	}
}

// TestNRIPod: plugins learn the pod's namespaces, pause and resources.
func TestNRIPod(t *testing.T) {
	p := nriPod(&sandbox.Pod{ID: "p", NetNS: "/run/net", SharePID: true, PausePID: 42, CgroupParent: "/kubepods/pod1"})
	if p.Namespaces["network"] != "/run/net" || p.Namespaces["pid"] != "/proc/42/ns/pid" || p.Pid != 42 || p.CgroupParent != "/kubepods/pod1" {
		t.Errorf("nriPod = %+v", p)
	}
	if _, ok := nriPod(&sandbox.Pod{ID: "h"}).Namespaces["network"]; ok {
		t.Error("a host-network pod has a network namespace path")
	}
}
