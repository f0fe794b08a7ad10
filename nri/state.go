package nri

import "sync"

// delivered is what plugins were last told of each container, so that
// each event reaches them once and in order: StopContainer comes from the
// CRI call and from the container's own exit (whichever is first),
// RemoveContainer implies a StopContainer not yet sent, and a container
// never created for plugins gets neither. Entries go with RemoveContainer.
type delivered struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]Status
}

func (d *delivered) set(id string, s Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]Status{}
	}
	d.m[id] = s
}

// seed records a container plugins were synchronised with, unless it is
// already known (its events since are newer than the listing).
func (d *delivered) seed(id string, s Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]Status{}
	}
	if _, ok := d.m[id]; !ok {
		d.m[id] = s
	}
}

// stop reports whether a StopContainer is owed (the container is created
// or running for plugins) and marks it stopped.
func (d *delivered) stop(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.m[id]
	if !ok || s == StatusStopped {
		return false
	}
	d.m[id] = StatusStopped
	return true
}

// remove forgets the container and reports whether a StopContainer and a
// RemoveContainer are owed.
func (d *delivered) remove(id string) (stop, remove bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.m[id]
	delete(d.m, id)
	return ok && s != StatusStopped, ok
}

func (d *delivered) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}
