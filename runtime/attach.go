package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

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
// stdin_once container. The shim owns the container's stdio, so the session
// goes through it.
func (m *Manager) Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer) error {
	st, err := m.Status(ctx, id)
	if err != nil {
		return err
	}
	if st.Status != shimapi.Status_RUNNING {
		return fmt.Errorf("attach to container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	if st.Tty {
		return fmt.Errorf("attach to container %s: containers with a terminal are not supported: %w", id, errdefs.ErrNotImplemented)
	}
	if stdin != nil && !st.Stdin {
		return fmt.Errorf("attach to container %s: it was created without stdin: %w", id, errdefs.ErrInvalidArgument)
	}
	socks, ok := m.shims.(attachSockets)
	if !ok {
		return fmt.Errorf("attach to container %s: %w", id, errdefs.ErrNotImplemented)
	}
	path, err := socks.AttachSocket(st.SandboxID)
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	h, _ := json.Marshal(shimapi.AttachHeader{ID: id, Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil})
	if _, err := conn.Write(append(h, '\n')); err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	if stdin != nil {
		go sendStdin(conn, stdin)
	}
	// A streaming server does not say when its client has gone; a quiet
	// container would hold the session (and the shim's end of it) until
	// its next output. An empty write every second finds out.
	var mu sync.Mutex
	probe := stdout
	if probe == nil {
		probe = stderr
	}
	if probe != nil {
		t := time.NewTicker(attachProbe)
		ended := make(chan struct{})
		defer func() { t.Stop(); close(ended) }()
		go func() {
			for {
				select {
				case <-ended:
					return
				case <-t.C:
				}
				mu.Lock()
				_, err := probe.Write(nil)
				mu.Unlock()
				if err != nil {
					_ = conn.Close()
					return
				}
			}
		}()
	}
	br := bufio.NewReader(conn)
	for {
		typ, data, err := shimapi.ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil // the client left, or the shim ended the session
			}
			return fmt.Errorf("attach to container %s: %w", id, err)
		}
		var w io.Writer
		switch typ {
		case shimapi.FrameStdout:
			w = stdout
		case shimapi.FrameStderr:
			w = stderr
		case shimapi.FrameExit:
			return nil
		}
		if w != nil {
			mu.Lock()
			_, err := w.Write(data)
			mu.Unlock()
			if err != nil {
				return nil // the client is gone
			}
		}
	}
}

// attachProbe is how often a session checks that its client is still there.
const attachProbe = time.Second

// sendStdin copies the client's stdin to the shim in frames and says when it
// ends.
func sendStdin(conn net.Conn, stdin io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if shimapi.WriteFrame(conn, shimapi.FrameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = shimapi.WriteFrame(conn, shimapi.FrameStdinClose, nil)
			return
		}
	}
}
