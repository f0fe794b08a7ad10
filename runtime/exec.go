package runtime

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// TermSize is a terminal's size in characters.
type TermSize struct{ Width, Height uint16 }

// Exec runs proc in the running container st (as Status just returned it,
// so a session reads the container's state once) with the given streams (nil
// stdin: none) and returns its exit code once it ends. The pod's shim
// starts the process, as it does for ExecSync, and streams its stdio. With
// proc.Terminal, the process gets a pty from the container's devpts: stdin
// and stdout stream through it (stderr is unused) and resize sets its size.
// Cancelling ctx, or the client leaving, kills it.
func (m *Manager) Exec(ctx context.Context, st State, proc *specs.Process,
	stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) (int, error) {
	id := st.ID
	if st.Status != StatusRunning || st.Pid <= 0 {
		return 0, fmt.Errorf("exec in container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	process, err := json.Marshal(proc)
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	if proc.Terminal {
		stderr = nil // one stream: the terminal
	}
	h := shimapi.AttachHeader{Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil,
		Exec: &shimapi.ExecHeader{ID: id, Process: process}}
	if !proc.Terminal {
		resize = nil
	}
	end, err := m.session(ctx, st.SandboxID, h, stdin, stdout, stderr, resize)
	switch {
	case err != nil:
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	case end.typ == shimapi.FrameError:
		return 0, fmt.Errorf("exec in container %s: %w", id, shimapi.ParseErrorFrame(end.data))
	case end.typ == shimapi.FrameExit && len(end.data) == 4:
		return int(int32(binary.BigEndian.Uint32(end.data))), nil
	case end.typ == shimapi.FrameExit:
		// An empty exit: a shim from before exec sessions, which took the
		// header for an attach to no container.
		return 0, fmt.Errorf("exec in container %s: its pod's shim is older than this daemon and cannot exec; recreate the pod: %w",
			id, errdefs.ErrFailedPrecondition)
	case ctx.Err() != nil:
		return 0, ctx.Err()
	default:
		return 0, fmt.Errorf("exec in container %s: the client left, or the pod's shim ended the session: %w", id, errdefs.ErrAborted)
	}
}

// ExecResult is what an ExecSync'd process left: its output (each
// stream bounded by the shim) and its exit code.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ExecSync runs a process (OCI process spec, JSON) in a running container.
// It asks nothing before the exec: the shim refuses a container that is
// not running (FailedPrecondition), and does not know one never started.
func (m *Manager) ExecSync(ctx context.Context, id string, process []byte, timeout time.Duration) (ExecResult, error) {
	c, shim, err := m.shimOf(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) && c.ID != "" {
		return ExecResult{}, fmt.Errorf("exec in container %s: it is not running, its pod's shim is gone: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	resp, err := shim.ExecSync(ctx, &shimapi.ExecSyncRequest{Id: id, Process: process, Timeout: int64(timeout / time.Second)})
	if errors.Is(err, errdefs.ErrNotFound) {
		return ExecResult{}, fmt.Errorf("exec in container %s: it has not been started: %w", id, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in container %s: %w", id, err)
	}
	return ExecResult{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode}, nil
}
