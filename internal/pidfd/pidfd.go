// Package pidfd signals processes listed in a cgroup through pidfds, so a
// pid that was reused between the read of the list and the signal never
// reaches another process.
//
// Internal to crib; no API compatibility promised.
package pidfd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SignalListed sends sig to every process that list names, through a pidfd.
// list is read once to open the pidfds and once more after: a pidfd names
// one process for its life, and a process that list names after its pidfd
// was opened is the one the pidfd names (a pid is not reused while its
// process lives, and the pidfd keeps it alive as a name). A pid that went
// away or now names a process outside the list is skipped. pidfd_open(2)
// needs Linux 5.3; without it the signal goes by pid, as before.
func SignalListed(list func() ([]int, error), sig unix.Signal) error {
	pids, err := list()
	if err != nil || len(pids) == 0 {
		return err
	}
	// At most batch pidfds are open at once: a container that forked a
	// million processes must not exhaust the caller's descriptors.
	var errs []error
	for start := 0; start < len(pids); start += batch {
		done, err := signalBatch(pids[start:min(start+batch, len(pids))], list, sig)
		if err != nil {
			errs = append(errs, err)
		}
		if done {
			break
		}
	}
	return errors.Join(errs...)
}

// batch is how many pidfds SignalListed holds at once.
var batch = 512

// signalBatch signals pids (some of list's) through pidfds; done reports
// that it fell back to signalling every pid of list by number (no pidfds).
func signalBatch(pids []int, list func() ([]int, error), sig unix.Signal) (done bool, err error) {
	fds := make(map[int]int, len(pids))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var errs []error
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds[pid] = fd
		case errors.Is(err, unix.ESRCH):
			// Exited already.
		case errors.Is(err, unix.ENOSYS):
			all, err := list()
			if err != nil {
				return true, err
			}
			return true, signalPids(all, sig)
		default:
			errs = append(errs, fmt.Errorf("pidfd_open %d: %w", pid, err))
		}
	}
	again, err := list()
	if err != nil {
		return false, errors.Join(append(errs, err)...)
	}
	listed := make(map[int]bool, len(again))
	for _, pid := range again {
		listed[pid] = true
	}
	for pid, fd := range fds {
		if !listed[pid] {
			continue
		}
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("signal pid %d with %v: %w", pid, sig, err))
		}
	}
	return false, errors.Join(errs...)
}

func signalPids(pids []int, sig unix.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("signal pid %d with %v: %w", pid, sig, err))
		}
	}
	return errors.Join(errs...)
}

// ParsePids reads a cgroup.procs file's contents.
func ParsePids(s string) []int {
	var pids []int
	for f := range strings.FieldsSeq(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
