package cgfs

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/pidfd"
)

// KillTree sends SIGKILL to every process in rel and below, through pidfds
// (internal/pidfd): on a cgroup that is not frozen (v1 without a freezer
// hierarchy) a listed process may exit and its pid be reused meanwhile.
func KillTree(root *Root, rel string) error {
	var errs []error
	s, err := root.Read(rel, "cgroup.procs")
	if err != nil {
		return err
	}
	reads := 0
	err = pidfd.SignalListed(func() ([]int, error) {
		if reads++; reads > 1 {
			s, err = root.Read(rel, "cgroup.procs")
		}
		return pidfd.ParsePids(s), err
	}, unix.SIGKILL)
	if err != nil {
		errs = append(errs, fmt.Errorf("kill processes in %s: %w", rel, err))
	}
	kids, err := root.Children(rel)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, k := range kids {
		if err := KillTree(root, rel+"/"+k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveTimeout bounds how long Remove retries a busy cgroup: a killed
// process leaves its cgroup only once the kernel has torn it down.
const RemoveTimeout = 5 * time.Second

// RemoveTree removes rel and every cgroup below it, children first,
// retrying EBUSY until deadline (one bound for the whole tree, so a stuck
// cgroup costs the caller at most that, never a hang). A cgroup already
// gone is not an error.
func RemoveTree(root *Root, rel string, deadline time.Time) error {
	kids, err := root.Children(rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	for _, k := range kids {
		if err := RemoveTree(root, rel+"/"+k, deadline); err != nil {
			return err
		}
	}
	var rmErr error
	WaitFor(time.Until(deadline), func() bool {
		rmErr = root.Rmdir(rel)
		if errors.Is(rmErr, unix.ENOENT) {
			rmErr = nil
		}
		return !errors.Is(rmErr, unix.EBUSY)
	})
	return rmErr
}

// RemoveEmpty removes rel if it is unused, without retrying or touching
// what is below: true when rel is gone, false when the kernel refused
// because a process or a child cgroup uses it (EBUSY; ENOTEMPTY is the
// same refusal in rmdir(2)'s other word).
func RemoveEmpty(root *Root, rel string) (bool, error) {
	err := root.Rmdir(rel)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return true, nil
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.ENOTEMPTY):
		return false, nil
	}
	return false, err
}

// WaitFor polls done with a growing interval (1ms to 100ms) until it
// returns true or timeout passes; it never blocks longer than timeout.
func WaitFor(timeout time.Duration, done func() bool) {
	deadline := time.Now().Add(timeout)
	for d := time.Millisecond; !done(); d = min(2*d, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(d)
	}
}
