// Package listener opens crib's unix sockets safely: one owner at a time
// (an flock held for the listener's life), a stale socket from a crashed
// owner replaced, and anything that is not a socket never deleted.
//
// It imports only the standard library and x/sys. Internal to crib; no API
// compatibility promised.
package listener

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrInUse reports that another process serves the socket.
var ErrInUse = errors.New("socket is in use")

// Listener is a unix socket listener that removes its socket and releases
// its lock on Close.
type Listener struct {
	net.Listener
	path string
	lock *os.File

	closeOnce sync.Once
	closeErr  error
}

// Listen serves path with the given permissions. It refuses when another
// process holds path's lock file or answers on the socket, and replaces a
// socket nobody answers on.
func Listen(path string, mode fs.FileMode) (_ *Listener, retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			_ = lock.Close()
		}
	}()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("listen on %s: lock %s held by another process: %w", path, lock.Name(), ErrInUse)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := bind(path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false) // Close removes it below, before the lock goes
	if afterBind != nil {
		afterBind(path)
	}
	if err := os.Chmod(path, mode); err != nil {
		_ = l.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return &Listener{Listener: l, path: path, lock: lock}, nil
}

// Claim takes path for a server that binds it itself (NRI's adaptation,
// which has no way to take a listener): the same lock file and the same
// refusal as Listen when another process answers on it or when it is not a
// socket, and a stale socket removed. The directory is made 0700 when
// missing. Closing the result releases the claim.
func Claim(path string) (io.Closer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("claim %s: %w", path, err)
	}
	// Someone who could write the directory could put another socket, or
	// anything, at path.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &st); err != nil {
		return nil, fmt.Errorf("claim %s: %w", path, err)
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("claim %s: directory owned by uid %d, mode %#o: only root may be able to write it", path, st.Uid, st.Mode&0o7777)
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", path, err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("claim %s: lock %s held by another process: %w", path, lock.Name(), ErrInUse)
	}
	if err := removeStale(path); err != nil {
		_ = lock.Close()
		return nil, err
	}
	return lock, nil
}

// afterBind, when set by a test, sees the socket between bind and chmod.
var afterBind func(path string)

// bindUmask is the umask the socket is bound under: bind(2) creates the
// socket file with 0777 &^ umask, and the daemon's umask is whatever
// started it (often 022, so 0755: connectable by every user until a chmod
// narrowed it). Under 0177 the socket is born 0600, root's only, and
// Listen's chmod only ever widens it to the mode asked for.
const bindUmask = 0o177

// bind binds path. In a directory that only this process's user may
// search (a shim's 0700 directory for each pod) nobody else can reach the
// socket before Listen's chmod, so it binds on the calling thread; anywhere
// else it binds under bindUmask (bindPrivate), at the cost of a thread.
func bind(path string) (*net.UnixListener, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Dir(path), &st); err == nil && int(st.Uid) == os.Geteuid() && st.Mode&0o011 == 0 {
		return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	}
	return bindPrivate(path)
}

// bindPrivate binds path under bindUmask without touching the umask of the
// rest of the process. umask(2) is per fs_struct, which Go's threads share,
// so setting it for the process would race with every file another
// goroutine creates meanwhile. Instead the bind runs on a locked thread that
// first unshares its fs_struct (unshare(2) CLONE_FS): its umask is its own.
// The goroutine returns without unlocking, so the Go runtime ends that
// thread rather than reusing it with a different umask, cwd and root.
func bindPrivate(path string) (l *net.UnixListener, err error) {
	err = WithUmask(func(int) int { return bindUmask }, func() error {
		l, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		return err
	})
	return l, err
}

// WithUmask runs f on a thread of its own whose umask is mask(the
// process's), as bindPrivate binds: for code that binds sockets it does
// not let crib bind (a library's), and whatever it starts inherits that
// umask.
func WithUmask(mask func(old int) int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// No UnlockOSThread: see bindPrivate.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs attributes for a private umask: %w", err)
			return
		}
		old := unix.Umask(0)
		unix.Umask(mask(old))
		errc <- f()
	}()
	return <-errc
}

// removeStale deletes a socket left by a process that died without cleaning
// up. Something that answers, or a file that is not a socket, is left alone.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen on %s: exists and is not a socket (%s): %w", path, fi.Mode().Type(), fs.ErrExist)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return fmt.Errorf("listen on %s: another process answers on it: %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// Close stops listening, removes the socket and releases the lock. Only
// the first call does: a later one must not remove a socket that another
// owner has bound at the path since.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		err := l.Listener.Close()
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		l.closeErr = errors.Join(err, l.lock.Close())
	})
	return l.closeErr
}
