package shim

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// execSession runs a streaming exec (kubectl exec): a process started as
// ExecSync starts one, its stdio streamed over the session's connection,
// until it exits (FrameExit with its code) or the daemon leaves, which
// kills it. A process that cannot start ends the session with FrameError.
func (s *service) execSession(conn net.Conn, br *bufio.Reader, h shimapi.AttachHeader) {
	fail := func(err error) { _ = shimapi.WriteFrame(conn, shimapi.FrameError, shimapi.ErrorFrame(err)) }
	c, err := s.get(h.Exec.ID)
	if err != nil {
		fail(err)
		return
	}
	var proc specs.Process
	if err := json.Unmarshal(h.Exec.Process, &proc); err != nil {
		fail(fmt.Errorf("parse process: %w: %w", err, errdefs.ErrInvalidArgument))
		return
	}
	if len(proc.Args) == 0 {
		fail(fmt.Errorf("process has no args: %w", errdefs.ErrInvalidArgument))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &sessionWriter{conn: conn, failed: cancel}
	st := execStreams{stdin: h.Stdin}
	if h.Stdout {
		st.stdout = frameStream{out, shimapi.FrameStdout}
	}
	if h.Stderr && !proc.Terminal {
		st.stderr = frameStream{out, shimapi.FrameStderr}
	}
	e, err := s.startExecProc(ctx, c, &proc, st)
	if err != nil {
		fail(err)
		return
	}
	go func() {
		defer cancel() // the daemon left: the process goes too
		readInput(conn, br, e.input())
	}()
	ws, err := e.wait(ctx)
	if err != nil {
		return // killed: nobody is left to tell
	}
	var code [4]byte
	binary.BigEndian.PutUint32(code[:], uint32(exitCode(ws)))
	_ = out.send(shimapi.FrameExit, code[:])
}

// input is where an exec session's frames go: its stdin pipe, or its
// terminal.
func (e *execProc) input() sessionInput {
	var once sync.Once
	var mu sync.Mutex // one write at a time, and none after the close
	return sessionInput{
		console: e.console,
		write: func(conn net.Conn, data []byte) error {
			mu.Lock()
			defer mu.Unlock()
			if e.stdin == nil {
				return nil
			}
			return writeInput(conn, e.stdin, data)
		},
		closeStdin: func() {
			once.Do(func() {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case e.console != nil && e.stdin != nil:
					sendEOF(e.console) // the terminal stays: it is the output too
				case e.stdin != nil:
					_ = e.stdin.Close()
				}
			})
		},
	}
}

// sessionWriter sends a session's frames, one at a time. A failed send
// means the daemon is gone: failed ends the session.
type sessionWriter struct {
	mu     sync.Mutex
	conn   net.Conn
	failed func()
}

func (w *sessionWriter) send(typ byte, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := shimapi.WriteFrame(w.conn, typ, data)
	if err != nil {
		w.failed()
	}
	return err
}

// frameStream writes one output stream as frames of its type.
type frameStream struct {
	w   *sessionWriter
	typ byte
}

func (f frameStream) Write(p []byte) (int, error) {
	if err := f.w.send(f.typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// sessionInput is where a session's client frames go.
type sessionInput struct {
	// write delivers stdin bytes (or drops them); errClientGone ends the
	// session.
	write func(conn net.Conn, data []byte) error
	// closeStdin is called when the client's stdin ends, and when the
	// session does; more than once.
	closeStdin func()
	// console is the terminal that resizes apply to; nil without one.
	console *os.File
}

// readInput reads the client's frames until it leaves. A stdin write that
// stalls (a process that reads no stdin, its pipe full) does not keep it
// from noticing the client leaving.
func readInput(conn net.Conn, r io.Reader, in sessionInput) {
	defer in.closeStdin()
	for {
		typ, data, err := shimapi.ReadFrame(r)
		if err != nil {
			return
		}
		switch typ {
		case shimapi.FrameStdin:
			if errors.Is(in.write(conn, data), errClientGone) {
				return
			}
		case shimapi.FrameStdinClose:
			in.closeStdin()
		case shimapi.FrameResize:
			if in.console != nil && len(data) == 4 {
				ws := &unix.Winsize{Col: binary.BigEndian.Uint16(data[0:2]), Row: binary.BigEndian.Uint16(data[2:4])}
				// Not Fd(): it would put the master in blocking mode.
				if rc, err := in.console.SyscallConn(); err == nil {
					_ = rc.Control(func(fd uintptr) { _ = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
				}
			}
		}
	}
}

// inputStall is how long a stdin write waits before it checks that the
// client is still there.
const inputStall = time.Second

var errClientGone = errors.New("the session's client is gone")

// writeInput writes data to w, checking every inputStall that conn's peer
// is still there. Errors of w (a process that closed its stdin) drop the
// data, as a pipe with no reader would. Callers serialise the writes to
// one file: the deadline is the file's, not the write's.
func writeInput(conn net.Conn, w *os.File, data []byte) error {
	for len(data) > 0 {
		if w.SetWriteDeadline(time.Now().Add(inputStall)) != nil {
			_, err := w.Write(data) // not pollable: no deadline to be had
			return err
		}
		n, err := w.Write(data)
		data = data[n:]
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if peerGone(conn) {
				_ = w.SetWriteDeadline(time.Time{})
				return errClientGone
			}
		case err != nil:
			_ = w.SetWriteDeadline(time.Time{})
			return err
		}
	}
	_ = w.SetWriteDeadline(time.Time{})
	return nil
}

// peerGone reports whether conn's peer has closed it, without reading
// from it (what it sent is still to be read).
func peerGone(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			gone = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return gone
}
