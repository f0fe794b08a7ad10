package shim

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/crib-runtime/crib/internal/listener"
	"github.com/crib-runtime/crib/runtime/shimapi"
	"golang.org/x/sys/unix"
)

// attachSub is one session's share of a container's output. Sends never
// block the container: a session that falls behind by attachBacklog frames
// loses them (the log file has everything).
type attachSub struct {
	frames chan []byte // ready-made frames
}

const attachBacklog = 256

// outputTee copies a stream's output to the session subscribers.
type outputTee struct {
	c   *container
	typ byte
}

func (t outputTee) Write(p []byte) (int, error) {
	t.c.attachMu.Lock()
	defer t.c.attachMu.Unlock()
	for sub, h := range t.c.subs {
		if (t.typ == shimapi.FrameStdout && !h.Stdout) || (t.typ == shimapi.FrameStderr && !h.Stderr) {
			continue
		}
		frame := make([]byte, 5+len(p))
		frame[0] = t.typ
		binary.BigEndian.PutUint32(frame[1:5], uint32(len(p)))
		copy(frame[5:], p)
		select {
		case sub.frames <- frame:
		default:
		}
	}
	return len(p), nil
}

// serveAttach accepts attach sessions until the listener closes.
func (s *service) serveAttach(dir string) (io.Closer, error) {
	l, err := listener.Listen(filepath.Join(dir, shimapi.AttachSocketName), 0o600)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.attach(conn)
		}
	}()
	return l, nil
}

// attach runs one session: an exec (see execSession), or the container's
// output to the client and the client's stdin to the container, until
// either side ends.
func (s *service) attach(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	line, err := br.ReadBytes('\n')
	var h shimapi.AttachHeader
	if err == nil {
		err = json.Unmarshal(line, &h)
	}
	if err != nil {
		return
	}
	if h.Exec != nil {
		s.execSession(conn, br, h)
		return
	}
	c, err := s.get(h.ID)
	if err != nil || c.exited() {
		_ = shimapi.WriteFrame(conn, shimapi.FrameExit, nil)
		return
	}
	sub := &attachSub{frames: make(chan []byte, attachBacklog)}
	if h.Stdout || h.Stderr {
		c.attachMu.Lock()
		c.subs[sub] = h
		c.attachMu.Unlock()
		defer func() {
			c.attachMu.Lock()
			delete(c.subs, sub)
			c.attachMu.Unlock()
		}()
	}
	// The reader notices the client leaving even while the container is
	// quiet, so a session never outlives its connection for long.
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		readInput(conn, br, attachInput(c, h.Stdin))
	}()
	for {
		select {
		case <-gone:
			return
		case frame := <-sub.frames:
			if _, err := conn.Write(frame); err != nil {
				return
			}
		case <-c.done:
			for len(sub.frames) > 0 { // what was already read before the exit
				if _, err := conn.Write(<-sub.frames); err != nil {
					return
				}
			}
			_ = shimapi.WriteFrame(conn, shimapi.FrameExit, nil)
			return
		}
	}
}

// attachInput is where an attach session's frames go: stdin (if the
// session has it) into the container's stdin, resizes onto its terminal.
// With stdin_once, the end of the first session's stdin closes the
// container's.
func attachInput(c *container, stdin bool) sessionInput {
	current := func() *os.File {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.stdin
	}
	return sessionInput{
		console: c.console,
		write: func(conn net.Conn, data []byte) error {
			if !stdin {
				return nil
			}
			c.stdinMu.Lock()
			defer c.stdinMu.Unlock()
			if w := current(); w != nil {
				return writeInput(conn, w, data)
			}
			return nil
		},
		closeStdin: func() {
			if !stdin {
				return
			}
			stdin = false
			if !c.stdinOnce {
				return
			}
			// Taken out under c.mu, written and closed outside it: a
			// container that stopped reading its terminal must not hold
			// the lock its exit needs.
			c.mu.Lock()
			w := c.stdin
			c.stdin = nil
			c.mu.Unlock()
			if w == nil {
				return
			}
			c.stdinMu.Lock()
			defer c.stdinMu.Unlock()
			if c.console != nil {
				sendEOF(w)
			}
			_ = w.Close()
		},
	}
}

// sendEOF ends a terminal's input the way a user's Ctrl-D does: the pty
// stays open for the container's session (closing our end would hang it
// up), so the end of stdin is the terminal's EOF character, which the line
// discipline turns into a zero-length read, and line editors into EOF.
func sendEOF(master *os.File) {
	eof := byte(4) // ^D, the default
	rc, err := master.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS); err == nil && t.Cc[unix.VEOF] != 0 {
			eof = t.Cc[unix.VEOF]
		}
	})
	// Bounded: a terminal whose input queue is full (a process in raw
	// mode that reads nothing) would take it never.
	if master.SetWriteDeadline(time.Now().Add(inputStall)) == nil {
		defer func() { _ = master.SetWriteDeadline(time.Time{}) }()
	}
	_, _ = master.Write([]byte{eof})
}
