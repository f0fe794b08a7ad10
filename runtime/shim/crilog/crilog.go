// Package crilog writes a container's output in the CRI log format the
// kubelet reads (`kubectl logs`, rotation):
//
//	<RFC3339Nano timestamp> <stdout|stderr> <F|P> <content>\n
//
// F marks the end of a line; P a piece of a longer line (split every
// MaxLine bytes, as containerd and conmon do) or the tail of a stream that
// ended without a newline. Joining a run of P pieces and the next F gives
// back the line.
//
// The file is opened beneath the pod's log directory (openat2
// RESOLVE_BENEATH from the directory's fd): the directory is the kubelet's
// word, but what lies below it may be writable from a container that mounts
// it, and a symlink there must not send the shim's writes elsewhere.
//
// It imports the standard library, x/sys and internal/resolve. Internal to
// crib; no API compatibility promised.
package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// MaxLine is the longest content of one log line; longer lines are split.
const MaxLine = 16 << 10

// Stream names, as the format spells them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// File is one container's CRI log file, shared by its stdout and stderr
// streams. Each line is written with one write(2) on an O_APPEND file, so
// the kubelet's reader never sees half a line from either stream.
type File struct {
	path string
	// dir is the log directory path is opened beneath; "" opens path as
	// given (a container created before crib kept the directory).
	dir string
	now func() time.Time
	max int // MaxLine; smaller in tests

	// mu guards f and buf.
	mu  sync.Mutex
	f   *os.File
	buf []byte // one formatted line, reused
}

// Open opens (creating it and its directories if needed) the log file at
// path for appending. path must lie below dir, lexically and on disk: no
// component below dir may lead out of it. dir "" opens path as given.
func Open(dir, path string) (*File, error) {
	if dir != "" {
		if _, err := relBeneath(dir, path); err != nil {
			return nil, err
		}
	}
	l := &File{path: path, dir: dir, now: time.Now, max: MaxLine}
	f, err := l.open()
	if err != nil {
		return nil, err
	}
	l.f = f
	return l, nil
}

// relBeneath returns path relative to dir, refusing a path that is not
// strictly below dir or that has a ".." component.
func relBeneath(dir, path string) (string, error) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || !filepath.IsAbs(dir) || rel == "." || slices.Contains(strings.Split(rel, "/"), "..") ||
		filepath.Join(dir, rel) != filepath.Clean(path) {
		return "", fmt.Errorf("open container log %s: not below the log directory %s", path, dir)
	}
	return rel, nil
}

func (l *File) open() (*os.File, error) {
	if l.dir == "" {
		// The kubelet names the pod's log directory but does not always
		// create it first (containerd and CRI-O create it too).
		if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
			return nil, fmt.Errorf("open container log: %w", err)
		}
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open container log: %w", err)
		}
		return f, nil
	}
	f, err := openBeneath(l.dir, l.path)
	if err != nil {
		return nil, fmt.Errorf("open container log %s: %w", l.path, err)
	}
	return f, nil
}

// beneath is how every path below the log directory is resolved: no
// component may leave the directory (an absolute symlink, or ".." past
// it, fails with EXDEV) and no /proc magic link is followed.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// openBeneath creates dir (the kubelet does not always create it first;
// containerd and CRI-O do too), then the directories between dir and path
// and the file itself, each resolved beneath dir's fd.
func openBeneath(dir, path string) (*os.File, error) {
	rel, err := relBeneath(dir, path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open log directory %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	if err := mkdirBeneath(dfd, filepath.Dir(rel)); err != nil {
		return nil, err
	}
	fd, err := resolve.Openat2(dfd, rel, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_CLOEXEC | unix.O_NOCTTY,
		Mode:    0o640,
		Resolve: beneath,
	})
	if err != nil {
		return nil, fmt.Errorf("openat2 %s beneath %s: %w", rel, dir, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// mkdirBeneath makes each directory of rel ("." for none) below dfd.
// mkdirat never follows a symlink in its last component, and its parent is
// opened beneath dfd, so no directory is made outside.
func mkdirBeneath(dfd int, rel string) error {
	if rel == "." {
		return nil
	}
	parent := "."
	for _, name := range strings.Split(rel, "/") {
		pfd, err := resolve.Openat2(dfd, parent, &unix.OpenHow{
			Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath,
		})
		if err != nil {
			return fmt.Errorf("openat2 %s beneath the log directory: %w", parent, err)
		}
		err = unix.Mkdirat(pfd, name, 0o755)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdirat %s beneath the log directory: %w", filepath.Join(parent, name), err)
		}
		parent = filepath.Join(parent, name)
	}
	return nil
}

// Path is the file's path.
func (l *File) Path() string { return l.path }

// Reopen opens the path again, after the kubelet renamed the file away to
// rotate it. The old file is kept when the new one cannot be opened.
func (l *File) Reopen() error {
	f, err := l.open()
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

// Close closes the file; later lines are dropped.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// writeLine writes one formatted line. Write errors (a full disk, a file
// the kubelet removed) drop the line, whole: a container must never block
// on its log.
func (l *File) writeLine(stream string, partial bool, content []byte) {
	tag := byte('F')
	if partial {
		tag = 'P'
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return
	}
	b := l.now().UTC().AppendFormat(l.buf[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, content...)
	b = append(b, '\n')
	if n, err := l.f.Write(b); err != nil && n > 0 {
		l.cutLocked(int64(n))
	}
	if cap(b) <= 2*MaxLine {
		l.buf = b
	}
}

// cutLocked takes back the n bytes of a line that a full disk let only
// partly in: left there, the next line would continue it, and the
// kubelet's reader could parse neither. Only this File writes the file
// (under mu), so its last n bytes are that piece. Preconditions: l.mu
// held.
func (l *File) cutLocked(n int64) {
	if fi, err := l.f.Stat(); err == nil && fi.Size() >= n {
		_ = l.f.Truncate(fi.Size() - n)
	}
}

// Stream splits one stream's bytes into log lines of File. It is an
// io.Writer for one goroutine; Flush at the end of the stream.
type Stream struct {
	file    *File
	name    string
	pending []byte // the current line's bytes not yet written, at most MaxLine
}

// Stream returns the writer of the named stream (Stdout or Stderr).
func (l *File) Stream(name string) *Stream {
	return &Stream{file: l, name: name}
}

// Write logs every complete line in p and keeps the rest for later.
func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.pending = append(s.pending, p...)
			s.splitPending()
			break
		}
		s.endLine(p[:i])
		p = p[i+1:]
	}
	return n, nil
}

// endLine writes pending+tail as a full line, in pieces when it is long.
func (s *Stream) endLine(tail []byte) {
	if len(s.pending) == 0 {
		for len(tail) > s.file.max {
			s.file.writeLine(s.name, true, tail[:s.file.max])
			tail = tail[s.file.max:]
		}
		s.file.writeLine(s.name, false, tail)
		return
	}
	for len(s.pending)+len(tail) > s.file.max {
		k := s.file.max - len(s.pending)
		s.pending = append(s.pending, tail[:k]...)
		s.file.writeLine(s.name, true, s.pending)
		s.pending, tail = s.pending[:0], tail[k:]
	}
	s.pending = append(s.pending, tail...)
	s.file.writeLine(s.name, false, s.pending)
	s.release()
}

// splitPending writes full MaxLine pieces of an unfinished line. Exactly
// MaxLine bytes stay pending: a newline next makes them an F line.
func (s *Stream) splitPending() {
	if len(s.pending) <= s.file.max {
		return
	}
	rest := s.pending
	for len(rest) > s.file.max {
		s.file.writeLine(s.name, true, rest[:s.file.max])
		rest = rest[s.file.max:]
	}
	s.pending = append(s.pending[:0], rest...)
}

// Flush writes what is left of an unfinished line as a partial line: the
// stream ended without a newline.
func (s *Stream) Flush() {
	if len(s.pending) > 0 {
		s.file.writeLine(s.name, true, s.pending)
	}
	s.release()
}

// release drops a large line buffer, so an idle container that once logged
// a long line does not keep 16 KiB per stream.
func (s *Stream) release() {
	if cap(s.pending) > 4<<10 {
		s.pending = nil
	} else {
		s.pending = s.pending[:0]
	}
}
