package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// Streams is what the streaming RPCs need: the server that hands out
// single-use, expiring URLs (k8s.io/cri-streaming).
type Streams interface {
	GetExec(*criapi.ExecRequest) (*criapi.ExecResponse, error)
	GetAttach(*criapi.AttachRequest) (*criapi.AttachResponse, error)
	GetPortForward(*criapi.PortForwardRequest) (*criapi.PortForwardResponse, error)
}

// streamRuntime runs what the streaming server's sessions ask for.
type streamRuntime struct{ s *Server }

// StreamRuntime is the runtime behind the streaming server.
func (s *Server) StreamRuntime() streamRuntime { return streamRuntime{s} }

// execProcess is the process spec of a command run in a container: its own
// identity, environment, capabilities and limits, the command given.
func execProcess(st runtime.State, cmd []string) *specs.Process {
	proc := &specs.Process{Args: cmd, Cwd: "/"}
	if p := st.Process; p != nil {
		proc.Env, proc.Cwd, proc.User, proc.Capabilities = p.Env, p.Cwd, p.User, p.Capabilities
		proc.NoNewPrivileges, proc.Rlimits, proc.ApparmorProfile = p.NoNewPrivileges, p.Rlimits, p.ApparmorProfile
		// An exec runs under the container's confinement, never outside it.
		proc.SelinuxLabel = p.SelinuxLabel
	}
	return proc
}

// Exec runs a command in a running container with the session's streams. A
// non-zero exit is reported the way the streaming server carries it to the
// client.
func (r streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser,
	tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	st, err := r.s.containers.Status(ctx, containerID)
	if err != nil {
		return err
	}
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	proc := execProcess(st, cmd)
	proc.Terminal = tty
	code, err := r.s.containers.Exec(ctx, st, proc, in, stdout, stderr, termSizes(ctx, tty, resize))
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// termSizes converts the streaming server's resizes for the runtime; nil
// without a terminal.
func termSizes(ctx context.Context, tty bool, resize <-chan remotecommandserver.TerminalSize) <-chan runtime.TermSize {
	if !tty || resize == nil {
		return nil
	}
	sizes := make(chan runtime.TermSize)
	go func() {
		defer close(sizes)
		for sz := range resize {
			select {
			case sizes <- runtime.TermSize{Width: sz.Width, Height: sz.Height}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return sizes
}

// Attach connects the session to a running container's stdio (or
// terminal), which its pod's shim owns.
func (r streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser,
	tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	return r.s.containers.Attach(ctx, containerID, in, stdout, stderr, termSizes(ctx, tty, resize))
}

// PortForward connects the stream to a TCP port on the pod's loopback,
// dialled from a thread inside the pod's network namespace.
func (r streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	pod, err := r.s.sandboxes.Get(podSandboxID)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func() (err error) {
		conn, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp4", addr)
		return err
	}
	if pod.NetNS == "" {
		err = dial() // a host-network pod: the node's loopback
	} else {
		// The socket belongs to the namespace of the thread that makes it.
		err = nsfs.Do(pod.NetNS, nsfs.Net, dial)
	}
	if err != nil {
		return fmt.Errorf("port forward to pod %s port %d: %w", podSandboxID, port, err)
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); done <- err }()
	go func() { _, err := io.Copy(stream, conn); done <- err }()
	err = <-done
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
