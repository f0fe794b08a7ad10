// Package nsfs pins namespaces without any process: a namespace lives as long
// as something refers to it, and a bind mount of its nsfs file is such a
// reference, as `ip netns add` does it. Pinned files are what CNI and every
// container of a pod join by path.
//
// A pod that uses the host's network or IPC namespace has nothing pinned:
// the caller records no path for that kind and containers join nothing, so
// they stay in the host's.
//
// It imports only the standard library and x/sys. Internal to crib; no API
// compatibility promised.
package nsfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Kind is a namespace type, named as in /proc/<pid>/ns.
type Kind string

// The kinds a pod pins.
const (
	Net Kind = "net"
	IPC Kind = "ipc"
	UTS Kind = "uts"
)

func (k Kind) flag() (int, error) {
	switch k {
	case Net:
		return unix.CLONE_NEWNET, nil
	case IPC:
		return unix.CLONE_NEWIPC, nil
	case UTS:
		return unix.CLONE_NEWUTS, nil
	case User:
		return unix.CLONE_NEWUSER, nil
	}
	return 0, fmt.Errorf("namespace kind %q cannot be pinned", k)
}

// Pin creates one new namespace of each kind and pins each at dir/<kind>
// (dir is created if missing, and stays). It returns the pinned paths by
// kind. On failure nothing stays pinned and no pin file it made is left.
func Pin(dir string, kinds ...Kind) (map[Kind]string, error) {
	if slices.Contains(kinds, User) {
		return nil, errors.New("pin namespaces: a user namespace is pinned by PinUser")
	}
	flags, paths, err := pinFiles(dir, kinds)
	if err != nil {
		return nil, err
	}
	if err := onDiscardedThread(func() error { return pinOnThread(flags, paths) }); err != nil {
		return nil, errors.Join(err, unpinAll(paths))
	}
	return paths, nil
}

// pinFiles makes dir (if missing; it stays) and in it one empty file per
// kind, the mount point a pin is bound on, as `ip netns add` makes it; it
// returns the kinds' clone flags and the files. O_EXCL: a path already in
// use is the caller's mistake, and pinning over another pod's namespace
// must never happen. On failure the files it made are gone.
func pinFiles(dir string, kinds []Kind) (int, map[Kind]string, error) {
	flags := 0
	for _, k := range kinds {
		f, err := k.flag()
		if err != nil {
			return 0, nil, err
		}
		flags |= f
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return 0, nil, fmt.Errorf("pin namespaces: %w", err)
	}
	paths := make(map[Kind]string, len(kinds))
	for _, k := range kinds {
		p := filepath.Join(dir, string(k))
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return 0, nil, errors.Join(fmt.Errorf("pin %s namespace: %w", k, err), unpinAll(paths))
		}
		f.Close()
		paths[k] = p
	}
	return flags, paths, nil
}

// unpinAll unpins every path (a pin, or a mount point not bound yet).
func unpinAll(paths map[Kind]string) error {
	var errs []error
	for _, p := range paths {
		errs = append(errs, Unpin(p))
	}
	return errors.Join(errs...)
}

// onDiscardedThread runs fn on a goroutine locked to an OS thread that is
// thrown away afterwards, so fn may change the thread's namespaces.
//
// The goroutine locks itself to its thread and never unlocks: when a
// goroutine exits still locked, the Go runtime terminates its thread
// instead of returning it to the pool (Go ≥ 1.10). A thread that unshare(2)
// or setns(2) moved into a pod's namespaces therefore dies with the
// goroutine, and no other goroutine is ever scheduled on it, so none can run
// (or open sockets, or exec a child) in the wrong namespace by accident.
// Switching back instead would be a second syscall that can fail and leave
// a poisoned thread in the pool.
//
// The exception is the main thread, which the runtime parks forever
// instead of killing: it would keep the namespace alive after Unpin, and
// /proc/self (the thread group leader's view, e.g. /proc/self/net) would
// show the pod's namespace to the whole process. So on the main thread fn
// runs on a nested goroutine, which cannot share this locked thread, and
// the main thread, never changed, is unlocked and returned.
func onDiscardedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			errc <- onDiscardedThread(fn)
			goruntime.UnlockOSThread()
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// pinOnThread unshares the namespaces on the calling thread, which
// onDiscardedThread throws away afterwards, and bind-mounts the thread's
// namespace files onto paths.
func pinOnThread(flags int, paths map[Kind]string) error {
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	task := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/"
	for k, p := range paths {
		// The mount is made in the mount namespace the thread shares with
		// the whole process: only net, ipc and uts were unshared.
		if err := unix.Mount(task+string(k), p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace at %s: %w", k, p, err)
		}
	}
	return nil
}

// Unpin unmounts a pinned namespace file and removes it. The namespace dies
// when its last user (a process, an open fd, another mount) goes. A path
// that is not pinned, or does not exist, is not an error.
func Unpin(path string) error {
	// A file bound twice needs two unmounts; the bound is only a guard.
	for i := 0; i < 8 && Pinned(path); i++ {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unpin %s: %w", path, err)
		}
	}
	if Pinned(path) {
		return fmt.Errorf("unpin %s: still mounted", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin %s: %w", path, err)
	}
	return nil
}

// Pinned reports whether path is a namespace file (nsfs): a pinned
// namespace, or a /proc/<pid>/ns entry.
func Pinned(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Do runs fn on an OS thread that has joined the namespace pinned at path
// (of kind k), and returns fn's error. Child processes fn starts (os/exec
// forks from the calling thread) are born in that namespace: this is how a
// CNI plugin is run inside a network namespace other than the daemon's.
// fn must not start goroutines that expect to be in the namespace. The
// thread is discarded afterwards (see onDiscardedThread).
func Do(path string, k Kind, fn func() error) error {
	flag, err := k.flag()
	if err != nil {
		return err
	}
	return onDiscardedThread(func() error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("join %s namespace %s: %w", k, path, err)
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), flag); err != nil {
			return fmt.Errorf("join %s namespace %s: %w", k, path, err)
		}
		return fn()
	})
}
