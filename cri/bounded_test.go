package cri

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox"
)

// anyCgroup answers every cgroup with the same counters, later each call.
type anyCgroup struct{ Stats }

func (anyCgroup) Cgroup(string) (*cgroups.Stats, error) {
	return &cgroups.Stats{Timestamp: time.Now(), CPU: cgroups.CPUStats{UsageNanos: uint64(time.Now().UnixNano())}}, nil
}
func (anyCgroup) WritableLayer(string) (uint64, uint64, error) { return 1, 1, nil }
func (anyCgroup) StorageDir() string                           { return "/var/lib/crib" }

// runStarted runs a pod in the race world with one started container.
func runStarted(t *testing.T, s *Server) (pod, ctr string) {
	t.Helper()
	ctx := t.Context()
	resp, err := s.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{Config: racePodConfig})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := s.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, Config: raceContainer("c"), SandboxConfig: racePodConfig})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartContainer(ctx, &criapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	return resp.PodSandboxId, cr.ContainerId
}

// TestCPUSamplesForgotten: the CPU samples kept for UsageNanoCores go with
// the container (RemoveContainer, or RemovePodSandbox removing it) and the
// pod (RemovePodSandbox).
func TestCPUSamplesForgotten(t *testing.T) {
	for _, viaPod := range []bool{false, true} {
		t.Run(fmt.Sprint("viaPod=", viaPod), func(t *testing.T) {
			s, _, _ := newRaceWorld(t)
			s.stats = anyCgroup{}
			ctx := t.Context()
			pod, ctr := runStarted(t, s)
			if _, err := s.ContainerStats(ctx, &criapi.ContainerStatsRequest{ContainerId: ctr}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.PodSandboxStats(ctx, &criapi.PodSandboxStatsRequest{PodSandboxId: pod}); err != nil {
				t.Fatal(err)
			}
			if n := s.cpu.size(); n != 2 {
				t.Fatalf("%d samples, want the pod's and the container's", n)
			}
			if !viaPod {
				if _, err := s.StopContainer(ctx, &criapi.StopContainerRequest{ContainerId: ctr}); err != nil {
					t.Fatal(err)
				}
				if _, err := s.RemoveContainer(ctx, &criapi.RemoveContainerRequest{ContainerId: ctr}); err != nil {
					t.Fatal(err)
				}
				if n := s.cpu.size(); n != 1 {
					t.Fatalf("%d samples after RemoveContainer, want the pod's only", n)
				}
			}
			if _, err := s.StopPodSandbox(ctx, &criapi.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RemovePodSandbox(ctx, &criapi.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
				t.Fatal(err)
			}
			if n := s.cpu.size(); n != 0 {
				t.Fatalf("%d samples outlive the pod", n)
			}
		})
	}
}

// TestListPodSandboxStatsSkipsRemoved: a pod whose cgroup went (removed
// during the call) and a listed container already gone are left out; the
// other pods are still answered.
func TestListPodSandboxStatsSkipsRemoved(t *testing.T) {
	s, pod, ctr := metricsWorld()
	gone := &sandbox.Pod{ID: "pod2", State: sandbox.StateReady, CgroupParent: "/kubepods/podgone"}
	s.sandboxes = fakeSandboxes{pods: []*sandbox.Pod{pod, gone}}
	s.stats = statsOf{s.stats.(fakeMetrics)}
	resp, err := s.ListPodSandboxStats(context.Background(), &criapi.ListPodSandboxStatsRequest{})
	if err != nil {
		t.Fatalf("one pod gone fails the call: %v", err)
	}
	if len(resp.Stats) != 1 || resp.Stats[0].GetAttributes().GetId() != pod.ID {
		t.Fatalf("stats %v, want %s's only", resp.Stats, pod.ID)
	}
	cs := resp.Stats[0].GetLinux().GetContainers()
	if len(cs) != 2 || cs[0].GetAttributes().GetId() != ctr.ID {
		t.Fatalf("containers %v, want %s and the exited one, not the vanished one", cs, ctr.ID)
	}
}

// statsOf serves Cgroup from fakeMetrics' cgroups (NotFound when missing).
type statsOf struct{ fakeMetrics }

func (f statsOf) Cgroup(path string) (*cgroups.Stats, error) {
	if m, ok := f.cgroups[path]; ok {
		return &m.Stats, nil
	}
	return nil, fmt.Errorf("cgroup %s: %w", path, errdefs.ErrNotFound)
}

func (statsOf) StorageDir() string { return "/var/lib/crib" }

// countingContainers counts List calls.
type countingContainers struct {
	fakeContainers
	lists *int
}

func (c countingContainers) List(ctx context.Context) ([]runtime.State, error) {
	*c.lists++
	return c.fakeContainers.List(ctx)
}

// TestListPodSandboxStatsListsOnce: the containers (one shim call per pod)
// are listed once per call, not once per pod.
func TestListPodSandboxStatsListsOnce(t *testing.T) {
	s, pod, _ := metricsWorld()
	other := *pod
	other.ID = "pod3"
	s.sandboxes = fakeSandboxes{pods: []*sandbox.Pod{pod, &other, pod}}
	s.stats = statsOf{s.stats.(fakeMetrics)}
	var lists int
	s.containers = countingContainers{s.containers.(fakeContainers), &lists}
	if _, err := s.ListPodSandboxStats(context.Background(), &criapi.ListPodSandboxStatsRequest{}); err != nil {
		t.Fatal(err)
	}
	if lists != 1 {
		t.Fatalf("%d container lists for 3 pods, want 1", lists)
	}
}
