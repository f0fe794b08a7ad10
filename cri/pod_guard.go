package cri

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/sandbox"
)

// podLocks orders the RPCs on one pod. RunPodSandbox, StopPodSandbox and
// RemovePodSandbox hold the pod alone; CreateContainer and StartContainer
// share it, and check under it that the pod is READY (its record's state is
// the pod's phase: CREATING → READY → NOTREADY → removed). Without it a
// CreateContainer that read the pod READY could record its container after
// RemovePodSandbox listed the pod's containers (a container of no pod), and
// a StartContainer could run one after StopPodSandbox stopped them (a
// running container in a stopped pod). Waits end with the caller's
// context; an entry lives only while someone holds or waits for it.
type podLocks struct {
	// mu guards pods.
	mu   sync.Mutex
	pods map[string]*podLock
}

type podLock struct {
	// holders is -1 while one RPC holds the pod alone, else the number
	// sharing it; users counts holders and waiters, so the entry goes
	// when the last leaves.
	holders, users int
	// changed is closed (and replaced) at every release.
	changed chan struct{}
}

// lock waits until the pod is free (alone) or not held alone (shared), and
// returns the function that releases it.
func (l *podLocks) lock(ctx context.Context, podID string, alone bool) (unlock func(), err error) {
	l.mu.Lock()
	if l.pods == nil {
		l.pods = map[string]*podLock{}
	}
	p := l.pods[podID]
	if p == nil {
		p = &podLock{changed: make(chan struct{})}
		l.pods[podID] = p
	}
	p.users++
	for alone && p.holders != 0 || !alone && p.holders < 0 {
		changed := p.changed
		l.mu.Unlock()
		select {
		case <-changed:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			l.leaveLocked(podID, p)
			l.mu.Unlock()
			return nil, fmt.Errorf("pod %s: waiting for another operation on it: %w", podID, ctx.Err())
		}
	}
	if alone {
		p.holders = -1
	} else {
		p.holders++
	}
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if p.holders < 0 {
				p.holders = 0
			} else {
				p.holders--
			}
			close(p.changed)
			p.changed = make(chan struct{})
			l.leaveLocked(podID, p)
		})
	}, nil
}

// Preconditions: l.mu is held.
func (l *podLocks) leaveLocked(podID string, p *podLock) {
	if p.users--; p.users == 0 {
		delete(l.pods, podID)
	}
}

// usePod shares the pod for a container RPC that needs it READY
// (CreateContainer, StartContainer), which checks that under the hold. id
// may be a unique prefix.
func (s *Server) usePod(ctx context.Context, id string) (unlock func(), err error) {
	pod, err := s.sandboxes.Get(id)
	if err != nil {
		return nil, err
	}
	// A pod still being made (its RunPodSandbox, NRI plugins' hook
	// included, holds it alone) is not ready: the caller learns it now
	// rather than after the run, as a pod in no list yet would tell it.
	if pod.State == sandbox.StateCreating {
		return nil, fmt.Errorf("pod %s is still being created: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	return s.podLocks.lock(ctx, pod.ID, false)
}

// held reports how many pods have an entry (tests: memory stays bounded).
func (l *podLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pods)
}
