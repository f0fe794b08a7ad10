package shim

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"path/filepath"

	"github.com/crib-runtime/crib/internal/listener"
	"github.com/crib-runtime/crib/runtime/shimapi"
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
	for sub := range t.c.subs {
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

// attach runs one session: the container's output to the client, the
// client's stdin to the container, until either side ends.
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
		if h.Stdin {
			s.attachStdin(c, br)
		}
		_, _ = io.Copy(io.Discard, br)
	}()
	for {
		select {
		case <-gone:
			return
		case frame := <-sub.frames:
			if (frame[0] == shimapi.FrameStdout && !h.Stdout) || (frame[0] == shimapi.FrameStderr && !h.Stderr) {
				continue
			}
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

// attachStdin writes the client's stdin frames into the container's stdin.
// With stdin_once, the first session that ends closes the container's stdin.
func (s *service) attachStdin(c *container, r io.Reader) {
	defer func() {
		if c.stdinOnce {
			c.mu.Lock()
			if c.stdin != nil {
				_ = c.stdin.Close()
				c.stdin = nil
			}
			c.mu.Unlock()
		}
	}()
	for {
		typ, data, err := shimapi.ReadFrame(r)
		if err != nil || typ == shimapi.FrameStdinClose {
			return
		}
		c.mu.Lock()
		w := c.stdin
		c.mu.Unlock()
		if w == nil {
			return
		}
		if _, err := w.Write(data); err != nil {
			return
		}
	}
}
