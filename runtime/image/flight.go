package image

import (
	"context"
	"sync"
)

// flights shares one pull among concurrent callers asking for the same thing.
// Unlike singleflight, the shared work is cancelled only when every caller
// has gone away, so one impatient kubelet request cannot fail the others.
type flights struct {
	mu sync.Mutex // guards m
	m  map[string]*flight
}

type flight struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int // guarded by flights.mu
	img     Image
	err     error
}

// do runs fn once per key among overlapping callers and returns its result.
func (f *flights) do(ctx context.Context, key string, fn func(context.Context) (Image, error)) (Image, error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	fl, ok := f.m[key]
	if !ok {
		var workCtx context.Context
		workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		fl = &flight{done: make(chan struct{}), cancel: cancel}
		f.m[key] = fl
		go func() {
			fl.img, fl.err = fn(workCtx)
			f.mu.Lock()
			if f.m[key] == fl {
				delete(f.m, key)
			}
			f.mu.Unlock()
			cancel()
			close(fl.done)
		}()
	}
	fl.waiters++
	f.mu.Unlock()

	select {
	case <-fl.done:
		return fl.img.clone(), fl.err
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		if fl.waiters == 0 {
			// Nobody waits any more: stop the work, and let a new caller
			// start afresh rather than join a cancelled flight.
			fl.cancel()
			if f.m[key] == fl {
				delete(f.m, key)
			}
		}
		f.mu.Unlock()
		return Image{}, ctx.Err()
	}
}
