package cgroup2

import (
	"fmt"
	"os"
	cgpath "path"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
)

var _ cgroups.OOMWatcher = (*Manager)(nil)

// WatchOOM implements cgroups.OOMWatcher with inotify on memory.events,
// which the kernel marks modified (kernfs_notify) when it counts an OOM
// kill, before the victim has died. The watch is set through the file
// opened beneath the root (/proc/self/fd), not a path.
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
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: inotify: %w", p, err)
	}
	in := os.NewFile(uintptr(fd), "inotify") // non-blocking: the runtime poller waits
	if _, err := unix.InotifyAddWatch(fd, fmt.Sprintf("/proc/self/fd/%d", events.Fd()), unix.IN_MODIFY); err != nil {
		in.Close()
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	last, err := m.OOMKills(p)
	if err != nil {
		in.Close()
		return nil, err
	}
	// The parent's count, which is hierarchical, answers for a cgroup
	// removed between the kernel's count and the read below (systemd
	// prunes a scope as soon as its last process has died, which can be
	// before this goroutine runs). The root cgroup has none: no fallback.
	parent := cgpath.Dir(p)
	lastParent, parentErr := m.OOMKills(parent)
	go watchEvents(in, func() bool {
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
	})
	return func() { _ = in.Close() }, nil
}

// watchEvents reads inotify events from in until it is closed or the
// watch goes (IN_IGNORED: the cgroup was removed), calling changed on each
// modification; changed returns false when there is nothing more to
// watch.
func watchEvents(in *os.File, changed func() bool) {
	defer in.Close()
	buf := make([]byte, 16*unix.SizeofInotifyEvent)
	for {
		n, err := in.Read(buf)
		if err != nil { // closed by stop, or the descriptor is gone
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if ev.Mask&unix.IN_IGNORED != 0 {
				return
			}
			if ev.Mask&unix.IN_MODIFY != 0 && !changed() {
				return
			}
		}
	}
}
