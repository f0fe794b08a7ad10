package cri

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventBuffer is how many events a slow subscriber may fall behind before
// its stream is ended; the kubelet then relists, as its evented PLEG does
// after any stream error.
const eventBuffer = 1024

// events fans container events out to GetContainerEvents streams.
type events struct {
	mu   sync.Mutex // guards subs
	subs map[chan *criapi.ContainerEventResponse]struct{}
}

func (e *events) subscribe() chan *criapi.ContainerEventResponse {
	ch := make(chan *criapi.ContainerEventResponse, eventBuffer)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.subs == nil {
		e.subs = map[chan *criapi.ContainerEventResponse]struct{}{}
	}
	e.subs[ch] = struct{}{}
	return ch
}

func (e *events) unsubscribe(ch chan *criapi.ContainerEventResponse) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.subs[ch]; ok {
		delete(e.subs, ch)
		close(ch)
	}
}

// listened reports whether any stream is subscribed.
func (e *events) listened() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs) > 0
}

func (e *events) publish(ev *criapi.ContainerEventResponse) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
			delete(e.subs, ch) // too far behind: end its stream
			close(ch)
		}
	}
}

// emit publishes an event about a container with its pod's current status
// and the statuses of the pod's containers, as the evented PLEG wants them.
// Without a subscriber (the kubelet's evented PLEG is off by default)
// nothing is built: the statuses cost a shim call per container.
func (s *Server) emit(ctx context.Context, id, podID string, typ criapi.ContainerEventType) {
	if !s.events.listened() {
		return
	}
	ev := &criapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ, CreatedAt: time.Now().UnixNano()}
	if ps, err := s.PodSandboxStatus(ctx, &criapi.PodSandboxStatusRequest{PodSandboxId: podID}); err == nil {
		ev.PodSandboxStatus = ps.Status
	}
	for _, cid := range s.containers.InSandbox(podID) {
		if cs, err := s.ContainerStatus(ctx, &criapi.ContainerStatusRequest{ContainerId: cid}); err == nil {
			ev.ContainersStatuses = append(ev.ContainersStatuses, cs.Status)
		}
	}
	s.events.publish(ev)
}

// GetContainerEvents streams container lifecycle events until the client
// goes away.
func (s *Server) GetContainerEvents(_ *criapi.GetEventsRequest, stream grpc.ServerStreamingServer[criapi.ContainerEventResponse]) error {
	ch := s.events.subscribe()
	defer s.events.unsubscribe(ch)
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev, ok := <-ch:
			if !ok {
				return context.Canceled
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
