package runtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// attachSockets is the part of Shims that knows where a pod's shim takes
// attach sessions; a Shims without it cannot attach.
type attachSockets interface {
	AttachSocket(sandboxID string) (string, error)
}

// Attach streams a running container's output to stdout and stderr (either
// may be nil: not wanted) and stdin, if given, to the container's stdin,
// until the container exits, ctx ends or the client's stdin ends for a
// stdin_once container. For a terminal container, resize sets its size.
// The shim owns the container's stdio, so the session
// goes through it.
func (m *Manager) Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) error {
	st, err := m.Status(ctx, id)
	if err != nil {
		return err
	}
	if st.Status != StatusRunning {
		return fmt.Errorf("attach to container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if stdin != nil && !st.Stdin {
		return fmt.Errorf("attach to container %s: it was created without stdin: %w", id, errdefs.ErrInvalidArgument)
	}
	if !st.Tty {
		resize = nil
	}
	h := shimapi.AttachHeader{ID: id, Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil}
	if _, err := m.session(ctx, st.SandboxID, h, stdin, stdout, stderr, resize); err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	return nil
}

// sessionEnd is the frame that ended a session; typ 0 when none did (the
// client left, or the shim closed the connection).
type sessionEnd struct {
	typ  byte
	data []byte
}

// session runs a streaming session (h says which) on the pod's shim: the
// client's stdin and terminal sizes to the shim, the shim's output frames
// to stdout and stderr, until the shim ends it, ctx ends or the client
// leaves.
func (m *Manager) session(ctx context.Context, podID string, h shimapi.AttachHeader,
	stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) (sessionEnd, error) {
	socks, ok := m.shims.(attachSockets)
	if !ok {
		return sessionEnd{}, errdefs.ErrNotImplemented
	}
	path, err := socks.AttachSocket(podID)
	if err != nil {
		return sessionEnd{}, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return sessionEnd{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	line, err := json.Marshal(h)
	if err != nil {
		return sessionEnd{}, err
	}
	if _, err := conn.Write(append(line, '\n')); err != nil {
		return sessionEnd{}, err
	}
	send := &frameWriter{w: conn}
	if stdin != nil {
		go send.stdin(stdin)
	}
	if resize != nil {
		go send.resizes(ctx, resize)
	}
	stdout, stderr, probe := sessionOutputs(stdout, stderr)
	defer watchClient(probe, func() { _ = conn.Close() })()
	br := bufio.NewReader(conn)
	for {
		typ, data, err := shimapi.ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return sessionEnd{}, nil // the client left, or the shim ended the session
			}
			return sessionEnd{}, err
		}
		var w io.Writer
		switch typ {
		case shimapi.FrameStdout:
			w = stdout
		case shimapi.FrameStderr:
			w = stderr
		case shimapi.FrameExit, shimapi.FrameError:
			return sessionEnd{typ: typ, data: data}, nil
		}
		if w != nil {
			if _, err := w.Write(data); err != nil {
				return sessionEnd{}, nil // the client is gone
			}
		}
	}
}

// frameWriter sends the client's frames to the shim, one writer at a time.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) send(typ byte, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return shimapi.WriteFrame(f.w, typ, data)
}

// stdin copies the client's stdin in frames and says when it ends.
func (f *frameWriter) stdin(stdin io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if f.send(shimapi.FrameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = f.send(shimapi.FrameStdinClose, nil)
			return
		}
	}
}

// resizes forwards terminal sizes until the session ends.
func (f *frameWriter) resizes(ctx context.Context, sizes <-chan TermSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			var b [4]byte
			binary.BigEndian.PutUint16(b[0:2], sz.Width)
			binary.BigEndian.PutUint16(b[2:4], sz.Height)
			if f.send(shimapi.FrameResize, b[:]) != nil {
				return
			}
		}
	}
}
