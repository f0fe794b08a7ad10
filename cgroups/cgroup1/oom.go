package cgroup1

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
)

var _ cgroups.OOMWatcher = (*Manager)(nil)

// WatchOOM implements cgroups.OOMWatcher with the v1 memory controller's
// OOM notification: an eventfd registered in cgroup.event_control with
// memory.oom_control (memory.rst, "OOM Control"), signalled when the
// cgroup runs out of memory, and once more when it is removed. A wake that
// finds the cgroup gone was its removal, unless the eventfd counted more
// than one event.
func (m *Manager) WatchOOM(path string, seen func()) (func(), error) {
	p, err := cgroups.OwnPath("watch oom kills of", path)
	if err != nil {
		return nil, err
	}
	mem := m.ctl["memory"]
	if mem == nil {
		return nil, cgroups.Preconditionf("watch oom kills of %s: the memory controller is not mounted", p)
	}
	rel := cgroups.Rel(p)
	oc, err := mem.OpenFile(rel, "memory.oom_control", unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	// The kernel keeps what it needs of the file once registered.
	defer oc.Close()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("watch oom kills of %s: eventfd: %w", p, err)
	}
	ev := os.NewFile(uintptr(efd), "oom-eventfd") // non-blocking: the runtime poller waits
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(oc.Fd()))
	if err := mem.Write(rel, "cgroup.event_control", reg); err != nil {
		ev.Close()
		return nil, fmt.Errorf("watch oom kills of %s: %w", p, err)
	}
	go func() {
		defer ev.Close()
		var b [8]byte
		for {
			if _, err := ev.Read(b[:]); err != nil { // closed by stop
				return
			}
			gone := !mem.Exists(rel, "memory.oom_control")
			if !gone || binary.NativeEndian.Uint64(b[:]) > 1 {
				seen()
			}
			if gone {
				return
			}
		}
	}()
	return func() { _ = ev.Close() }, nil
}
