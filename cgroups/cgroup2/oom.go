package cgroup2

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
)

var _ cgroups.OOMWatcher = (*Manager)(nil)

// WatchOOM implements cgroups.OOMWatcher with inotify on memory.events,
// which the kernel marks modified (kernfs_notify) when it counts an OOM
// kill, before the victim has died. The watch is set through the file
// opened beneath the root (/proc/self/fd), not a path. All of a Manager's
// watches share one inotify instance: instances are few per user (root's
// fs.inotify.max_user_instances, 128 by default, for the whole host),
// watches many (max_user_watches), and one instance per container would
// run out past about a hundred containers, for crib and every other
// root daemon.
func (m *Manager) WatchOOM(path string, seen func()) (func(), error) {
	p, err := cgroups.OwnPath("watch oom kills of", path)
	if err != nil {
		return nil, err
	}
	events, err := m.root.OpenFile(cgroups.Rel(p), "memory.events", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	defer events.Close()
	last, err := m.OOMKills(p)
	if err != nil {
		return nil, err
	}
	// changed runs on the instance's one reader goroutine only.
	changed := func() bool {
		n, err := m.OOMKills(p)
		if err != nil {
			return false
		}
		if n > last {
			last = n
			seen()
		}
		return true
	}
	stop, err := m.inotify.add(fmt.Sprintf("/proc/self/fd/%d", events.Fd()), changed)
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	return stop, nil
}

// inotify is one inotify instance with many watches, made at the first
// watch and read by one goroutine until close.
type inotify struct {
	// mu guards the fields below.
	mu sync.Mutex
	in *os.File
	// watches maps a watch descriptor to what hears its modifications
	// (one file watched twice shares its descriptor).
	watches map[int32][]*watch
	closed  bool
}

type watch struct{ changed func() bool }

// add watches file for IN_MODIFY and calls changed on each modification
// until the returned stop is called, the file goes or changed returns
// false.
func (n *inotify) add(file string, changed func() bool) (func(), error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, fmt.Errorf("inotify: %w", os.ErrClosed)
	}
	if n.in == nil {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("inotify: %w", err)
		}
		n.in = os.NewFile(uintptr(fd), "inotify") // non-blocking: the runtime poller waits
		n.watches = map[int32][]*watch{}
		go n.read(n.in)
	}
	// Held across the add, so that the reader, which takes mu to find
	// the watch, cannot miss a modification that comes at once.
	wd, err := unix.InotifyAddWatch(int(n.in.Fd()), file, unix.IN_MODIFY|unix.IN_MASK_ADD)
	if err != nil {
		return nil, fmt.Errorf("inotify watch: %w", err)
	}
	w := &watch{changed: changed}
	n.watches[int32(wd)] = append(n.watches[int32(wd)], w)
	return func() { n.remove(int32(wd), w, true) }, nil
}

// remove forgets w, and the kernel's watch wd with its last hearer
// (rm: the watch is still the kernel's, not gone with its file).
func (n *inotify) remove(wd int32, w *watch, rm bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ws := slices.DeleteFunc(n.watches[wd], func(x *watch) bool { return x == w })
	if len(ws) > 0 {
		n.watches[wd] = ws
		return
	}
	if _, ok := n.watches[wd]; !ok {
		return
	}
	delete(n.watches, wd)
	if rm && n.in != nil && !n.closed {
		_, _ = unix.InotifyRmWatch(int(n.in.Fd()), uint32(wd))
	}
}

// close closes the instance; its reader ends.
func (n *inotify) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	if n.in != nil {
		_ = n.in.Close()
	}
}

// read reads events from in until it is closed, calling each watch's
// changed on IN_MODIFY and dropping the watches the kernel dropped
// (IN_IGNORED: the cgroup was removed, or stop removed the watch).
func (n *inotify) read(in *os.File) {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		l, err := in.Read(buf)
		if err != nil { // closed
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= l; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			n.mu.Lock()
			ws := slices.Clone(n.watches[ev.Wd])
			if ev.Mask&unix.IN_IGNORED != 0 {
				delete(n.watches, ev.Wd)
			}
			n.mu.Unlock()
			if ev.Mask&unix.IN_MODIFY == 0 {
				continue
			}
			for _, w := range ws {
				if !w.changed() {
					n.remove(ev.Wd, w, true)
				}
			}
		}
	}
}
