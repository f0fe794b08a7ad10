package cri

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Backoff between a watcher's Waits after its shim's connection ended: the
// next Wait dials the shim again.
const (
	watchRetryMin = 50 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// watchers keeps a container's events in order: CREATED, STARTED, STOPPED,
// DELETED. A container that exits at once would otherwise have its
// watcher publish STOPPED while StartContainer still builds STARTED, and a
// RemoveContainer of a running one DELETED before the watcher's STOPPED.
// An entry lives from a successful start until the container is removed.
type watchers struct {
	mu sync.Mutex // guards m
	m  map[string]*watcher
}

type watcher struct {
	// started is closed once STARTED is published: STOPPED waits for it.
	started chan struct{}
	// done is closed once the watcher published STOPPED or gave up:
	// DELETED waits for it.
	done chan struct{}
}

func (w *watchers) add(id string, started bool) *watcher {
	x := &watcher{started: make(chan struct{}), done: make(chan struct{})}
	if started {
		close(x.started)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]*watcher{}
	}
	w.m[id] = x
	return x
}

// forget drops a removed container's entry, first waiting (as long as ctx
// allows, and at most forgetWait) for its watcher to publish STOPPED: the
// wait orders events, and must not hold a removal that is done.
func (w *watchers) forget(ctx context.Context, id string) {
	w.mu.Lock()
	x := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if x == nil {
		return
	}
	t := time.NewTimer(forgetWait)
	defer t.Stop()
	select {
	case <-x.done:
	case <-ctx.Done():
	case <-t.C:
	}
}

// forgetWait bounds how long a removal waits for its container's STOPPED.
const forgetWait = 5 * time.Second

// drop removes id's entry if it is still x.
func (w *watchers) drop(id string, x *watcher) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m[id] == x {
		delete(w.m, id)
	}
}

// size reports how many containers have an entry (tests: memory stays
// bounded).
func (w *watchers) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// watch publishes STOPPED when a started container exits, whoever stopped
// it (or removed it), after its STARTED. A Wait cut short by its shim's connection (the
// shim restarted, or the connection broke) is made again: the next one
// dials the shim anew. It ends with the container's exit or removal, or
// with the daemon (s.base).
func (s *Server) watch(id, podID string, w *watcher) {
	defer func() {
		close(w.done)
		// A container removed before its entry was added (a Remove
		// racing StartContainer's return) has nobody left to forget it.
		if _, err := s.containers.Sandbox(id); errors.Is(err, errdefs.ErrNotFound) {
			s.watchers.drop(id, w)
		}
	}()
	ctx := s.base
	logger := klog.FromContext(ctx)
	for backoff := watchRetryMin; ; backoff = min(2*backoff, watchRetryMax) {
		_, err := s.containers.Wait(ctx, id)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errdefs.ErrNotFound) {
			// Removed or being removed (a container that exited at
			// once can be deleted from its shim before its watcher's
			// first Wait: it stopped all the same), or its shim is
			// gone: its containers are exited, reason Unknown.
			st, serr := s.containers.Status(ctx, id)
			if errors.Is(serr, errdefs.ErrNotFound) || serr == nil && toCRIState(st.Status) != criapi.ContainerState_CONTAINER_RUNNING {
				break
			}
		}
		logger.V(4).Info("Watching container again", "containerID", id, "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
	select {
	case <-w.started:
	case <-ctx.Done():
		return
	}
	// Whoever stopped it: plugins hear of an exit of its own too, once.
	logNRI(ctx, s.nri.StopContainer(ctx, id, s.nriInfo(ctx, podID, id, nil)), id)
	s.emit(ctx, id, podID, criapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// WatchRunning starts watchers for containers that already run (after a
// daemon restart), so their exits produce events too. A container whose
// shim did not answer in time (Unknown) is watched as well: its Wait
// returns once the shim does.
func (s *Server) WatchRunning(ctx context.Context) error {
	all, err := s.containers.List(ctx)
	if err != nil {
		return err
	}
	for _, st := range all {
		switch toCRIState(st.Status) {
		case criapi.ContainerState_CONTAINER_RUNNING, criapi.ContainerState_CONTAINER_UNKNOWN:
			go s.watch(st.ID, st.SandboxID, s.watchers.add(st.ID, true))
		}
	}
	return nil
}
