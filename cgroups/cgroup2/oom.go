package cgroup2

import (
	"errors"
	"fmt"
	"maps"
	"os"
	cgpath "path"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
)

var _ cgroups.OOMWatcher = (*Manager)(nil)

// WatchOOM implements cgroups.OOMWatcher with inotify on memory.events,
// which the kernel marks modified (kernfs_notify) when it counts an OOM
// kill, before the victim has died. The watch is set through the file
// opened beneath the root (/proc/self/fd), not a path. Every watch of the
// manager shares one inotify instance (oomWatches).
func (m *Manager) WatchOOM(path string, seen func()) (func(), error) {
	p, err := cgroups.OwnPath("watch oom kills of", path)
	if err != nil {
		return nil, err
	}
	rel := cgroups.Rel(p)
	events, err := m.root.OpenFile(rel, "memory.events", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	defer events.Close()
	// The counts are read with the watch set and before its events are
	// handed to changed: the instance's reader waits for add to return.
	stop, err := m.oom.add(fmt.Sprintf("/proc/self/fd/%d", events.Fd()), func() (func() bool, error) {
		last, err := m.OOMKills(p)
		if err != nil {
			return nil, err
		}
		// The parent's count, which is hierarchical, answers for a cgroup
		// removed between the kernel's count and the read below (systemd
		// prunes a scope as soon as its last process has died, which can be
		// before the reader runs). The root cgroup has none: no fallback.
		parent := cgpath.Dir(p)
		lastParent, parentErr := m.OOMKills(parent)
		return func() bool {
			n, err := m.OOMKills(p)
			if err != nil {
				if parentErr == nil {
					if pn, err := m.OOMKills(parent); err == nil && pn > lastParent {
						seen()
					}
				}
				return false
			}
			if parentErr == nil {
				if pn, err := m.OOMKills(parent); err == nil {
					lastParent = pn
				}
			}
			if n > last {
				last = n
				seen()
			}
			return true
		}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	return stop, nil
}

// oomWatches is one inotify instance for all of a manager's OOM watches
// (a shim holds one manager for all its containers): the host gives each
// user 128 instances by default (fs.inotify.max_user_instances), which one
// per container would spend on a node of 110 pods, and a watch costs far
// less than an instance. The instance closes with its last watch.
type oomWatches struct {
	mu  sync.Mutex
	cur *inotifyInstance // nil when nothing is watched
}

type inotifyInstance struct {
	in *os.File
	fd int // in's descriptor, for the watch calls
	// changed is each watch's callback by watch descriptor (which are
	// numbered per instance); it returns false when there is nothing more
	// to watch.
	changed map[int32]func() bool
}

// add watches path for modification; setup runs with the watch set and
// returns the callback for its events, which no event reaches before add
// returns.
func (w *oomWatches) add(path string, setup func() (func() bool, error)) (stop func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	inst := w.cur
	if inst == nil {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("inotify: %w", err)
		}
		// Non-blocking: the runtime poller waits.
		inst = &inotifyInstance{in: os.NewFile(uintptr(fd), "inotify"), fd: fd, changed: map[int32]func() bool{}}
		go w.read(inst)
		w.cur = inst
	}
	defer func() {
		if err != nil {
			w.closeIfIdleLocked(inst)
		}
	}()
	wd, err := unix.InotifyAddWatch(inst.fd, path, unix.IN_MODIFY)
	if err != nil {
		return nil, err
	}
	if _, dup := inst.changed[int32(wd)]; dup {
		// The same file watched twice: inotify gives one descriptor, whose
		// watch the first stop would end for both.
		return nil, errors.New("already watched")
	}
	changed, err := setup()
	if err != nil {
		_, _ = unix.InotifyRmWatch(inst.fd, uint32(wd))
		return nil, err
	}
	inst.changed[int32(wd)] = changed
	return func() { w.remove(inst, int32(wd)) }, nil
}

// remove ends the watch wd of inst, if it is still there.
func (w *oomWatches) remove(inst *inotifyInstance, wd int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := inst.changed[wd]; !ok {
		return
	}
	delete(inst.changed, wd)
	_, _ = unix.InotifyRmWatch(inst.fd, uint32(wd))
	w.closeIfIdleLocked(inst)
}

// closeIfIdleLocked closes inst once it watches nothing; its reader then
// returns. The next watch opens a new instance.
func (w *oomWatches) closeIfIdleLocked(inst *inotifyInstance) {
	if len(inst.changed) > 0 {
		return
	}
	_ = inst.in.Close()
	if w.cur == inst {
		w.cur = nil
	}
}

// read hands inst's events to their watches' callbacks until inst is
// closed. A watch goes when its callback returns false or its file goes
// (IN_IGNORED: the cgroup was removed).
func (w *oomWatches) read(inst *inotifyInstance) {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := inst.in.Read(buf)
		if err != nil {
			// Closed with its last watch, or broken: then the next watch
			// must not join it.
			w.mu.Lock()
			if w.cur == inst {
				w.cur = nil
				_ = inst.in.Close()
			}
			w.mu.Unlock()
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				// The queue, which all the manager's cgroups share, filled
				// and the kernel dropped events: every watch looks again.
				w.everyWatch(inst)
				continue
			}
			w.mu.Lock()
			changed := inst.changed[ev.Wd]
			if ev.Mask&unix.IN_IGNORED != 0 && changed != nil {
				delete(inst.changed, ev.Wd) // the kernel ended the watch
				w.closeIfIdleLocked(inst)
				changed = nil
			}
			w.mu.Unlock()
			// Outside the lock: it reads the cgroup's files, and the
			// callback of a watch stopped meanwhile may run once more.
			if changed != nil && ev.Mask&unix.IN_MODIFY != 0 && !changed() {
				w.remove(inst, ev.Wd)
			}
		}
	}
}

// everyWatch calls every watch's callback of inst, after a queue overflow
// lost some of their events. Each callback reads its own count, so a call
// without a change is harmless.
func (w *oomWatches) everyWatch(inst *inotifyInstance) {
	w.mu.Lock()
	all := maps.Clone(inst.changed)
	w.mu.Unlock()
	for wd, changed := range all {
		if !changed() {
			w.remove(inst, wd)
		}
	}
}
