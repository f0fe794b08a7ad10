package cri

import (
	"fmt"
	"slices"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventsOf reads ch until id's event last arrives (or 10s pass) and returns
// id's events in the order they were published.
func eventsOf(t *testing.T, ch chan *criapi.ContainerEventResponse, id string, last criapi.ContainerEventType) []criapi.ContainerEventType {
	t.Helper()
	var got []criapi.ContainerEventType
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.ContainerId != id {
				continue
			}
			got = append(got, ev.ContainerEventType)
			if ev.ContainerEventType == last {
				return got
			}
		case <-timeout:
			t.Fatalf("container %s: events %v, no %v within 10s", id, got, last)
		}
	}
}

// TestWatchResumesAfterReconnect: a Wait cut short by a lost shim
// connection is made again, so the container's exit is still published.
func TestWatchResumesAfterReconnect(t *testing.T) {
	s, w, _ := newRaceWorld(t)
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	ctx := t.Context()
	resp, err := s.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{Config: racePodConfig})
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.shims[resp.PodSandboxId].waitFails = 1
	w.mu.Unlock()
	cr, err := s.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, Config: raceContainer("c"), SandboxConfig: racePodConfig})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartContainer(ctx, &criapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the watcher meets the lost connection
	if _, err := s.StopContainer(ctx, &criapi.StopContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	eventsOf(t, ch, cr.ContainerId, criapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// TestContainerEventsInOrder: a container's events reach subscribers as
// CREATED, STARTED, STOPPED, DELETED, also when it exits at once (its
// watcher's STOPPED against StartContainer's STARTED) and when it is
// removed running (RemoveContainer's DELETED against the watcher's
// STOPPED). The watchers' entries go with the containers.
func TestContainerEventsInOrder(t *testing.T) {
	s, w, _ := newRaceWorld(t)
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	ctx := t.Context()
	resp, err := s.RunPodSandbox(ctx, &criapi.RunPodSandboxRequest{Config: racePodConfig})
	if err != nil {
		t.Fatal(err)
	}
	pod := resp.PodSandboxId
	want := []criapi.ContainerEventType{criapi.ContainerEventType_CONTAINER_CREATED_EVENT, criapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		criapi.ContainerEventType_CONTAINER_STOPPED_EVENT, criapi.ContainerEventType_CONTAINER_DELETED_EVENT}
	rounds := 300
	if testing.Short() {
		rounds = 60
	}
	for i := range rounds {
		// Rounds of three: removed running; exited at once, its STOPPED
		// awaited; exited at once and removed at once.
		exitAtStart := i%3 != 0
		w.mu.Lock()
		sh := w.shims[pod]
		w.mu.Unlock()
		sh.mu.Lock()
		sh.exitAtStart = exitAtStart
		sh.mu.Unlock()
		cr, err := s.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: pod, Config: raceContainer(fmt.Sprint("c", i)), SandboxConfig: racePodConfig})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.StartContainer(ctx, &criapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			t.Fatal(err)
		}
		var got []criapi.ContainerEventType
		if i%3 == 1 {
			// Its exit is published before it is removed: after STARTED.
			got = eventsOf(t, ch, cr.ContainerId, criapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
		}
		if _, err := s.RemoveContainer(ctx, &criapi.RemoveContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			t.Fatal(err)
		}
		got = append(got, eventsOf(t, ch, cr.ContainerId, criapi.ContainerEventType_CONTAINER_DELETED_EVENT)...)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d (exit at start: %v): events %v, want %v", i, exitAtStart, got, want)
		}
		if n := s.watchers.size(); n != 0 {
			t.Fatalf("round %d: %d watcher entries outlive their containers", i, n)
		}
	}
}
