package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/tools/remotecommand"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
)

// attachStream runs one attach session the way kubectl attach does (SPDY).
func attachStream(ctx context.Context, c harness.Clients, id string, stdin io.Reader, stdout, stderr io.Writer) error {
	resp, err := c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: id, Stdin: stdin != nil, Stdout: stdout != nil, Stderr: stderr != nil})
	if err != nil {
		return err
	}
	return harness.Stream(ctx, resp.Url, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
}

func TestAttach(t *testing.T) {
	echo := `while read l; do echo "got $l"; echo "err $l" >&2; done; echo bye; exit 7`
	withStdin := func(once bool) func(*criapi.ContainerConfig) {
		return func(c *criapi.ContainerConfig) { c.Stdin, c.StdinOnce = true, once }
	}
	p := startHostPod(t, withStdin(false), "sh", "-c", echo)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A session that leaves does not end the container or its stdin: a
	// second session still talks to it.
	for _, word := range []string{"one", "two"} {
		sctx, leave := context.WithCancel(ctx)
		in, inw := io.Pipe()
		var out, errb harness.SyncBuffer
		done := make(chan error, 1)
		go func() {
			err := attachStream(sctx, p.c, p.id, in, &out, &errb)
			_ = in.Close() // unblocks the writer below if the session failed
			done <- err
		}()
		// Output only reaches sessions that are open, so keep writing
		// until the answer comes back.
		waitFor(t, func() bool {
			if _, err := io.WriteString(inw, word+"\n"); err != nil {
				t.Fatalf("session %s: %v", word, <-done)
			}
			return strings.Contains(out.String(), "got "+word) && strings.Contains(errb.String(), "err "+word)
		}, "an answer to "+word)
		leave()
		_ = inw.Close()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("session %s: %v", word, err)
		}
	}
	st, err := p.c.Runtime.ContainerStatus(ctx, p.id, false)
	if err != nil || st.GetStatus().GetState() != criapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after detaching: %v, %v", st.GetStatus().GetState(), err)
	}

	// stdin_once: the end of the first session's stdin is the end of the
	// container's; the session sees the last output, then ends.
	once := p.run(t, "once", withStdin(true), "sh", "-c", "sleep 0.5; "+echo)
	var out, errb bytes.Buffer
	if err := attachStream(ctx, p.c, once, strings.NewReader("hello\n"), &out, &errb); err != nil {
		t.Fatalf("stdin_once session: %v", err)
	}
	if out.String() != "got hello\nbye\n" || errb.String() != "err hello\n" {
		t.Fatalf("stdin_once session: stdout %q stderr %q", out.String(), errb.String())
	}
	waitFor(t, func() bool {
		st, err := p.c.Runtime.ContainerStatus(ctx, once, false)
		return err == nil && st.GetStatus().GetState() == criapi.ContainerState_CONTAINER_EXITED && st.GetStatus().GetExitCode() == 7
	}, "the stdin_once container to exit")

	// Bad input: attaching to an exited container, stdin to a container
	// created without it, a terminal the container does not have.
	if _, err := p.c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: once, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("attach to exited container: %v", err)
	}
	if _, err := p.c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: once, Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exec in exited container: %v", err)
	}
	quiet := p.run(t, "quiet", nil, "sleep", "3600")
	_, err = p.c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: quiet, Stdin: true, Stdout: true})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "stdin") {
		t.Errorf("stdin attach to a container without stdin: %v", err)
	}
	// An output-only session on a quiet container ends when its client
	// leaves.
	sctx, leave := context.WithTimeout(ctx, 500*time.Millisecond)
	defer leave()
	start := time.Now()
	if err := attachStream(sctx, p.c, quiet, nil, io.Discard, nil); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("output-only session: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("output-only session took %v to end after its client left", d)
	}
}

// TestStreamTokens: a streaming URL is single-use, and one the server never
// issued is refused; neither hangs.
func TestStreamTokens(t *testing.T) {
	c, _, id := hostPod(t, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := harness.Stream(ctx, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard}); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := harness.Stream(ctx, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
		t.Fatal("a used streaming URL was accepted again")
	}
	i := strings.LastIndex(resp.Url, "/")
	if err := harness.Stream(ctx, resp.Url[:i+1]+"notatoken", remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
		t.Fatal("an unknown streaming token was accepted")
	}
}

// TestAttachTerminal: a container with a terminal is attached through its
// pty, and a resize reaches it.
func TestAttachTerminal(t *testing.T) {
	p := startHostPod(t, func(c *criapi.ContainerConfig) { c.Tty, c.Stdin = true, true },
		"sh", "-c", `while read l; do echo "size $(stty size) on $(tty)"; done`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := p.c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: p.id, Stdin: true, Stdout: true, Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	q := sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1)}
	q.sizes <- remotecommand.TerminalSize{Width: 100, Height: 30}
	close(q.sizes)
	sctx, leave := context.WithCancel(ctx)
	in, inw := io.Pipe()
	var out harness.SyncBuffer
	done := make(chan error, 1)
	go func() {
		err := harness.Stream(sctx, resp.Url, remotecommand.StreamOptions{Stdin: in, Stdout: &out, Tty: true, TerminalSizeQueue: q})
		_ = in.Close()
		done <- err
	}()
	waitFor(t, func() bool {
		if _, err := io.WriteString(inw, "x\n"); err != nil {
			t.Fatalf("terminal session: %v", <-done)
		}
		return strings.Contains(out.String(), "size 30 100 on /dev/pts/")
	}, "the resized terminal's answer")
	leave()
	_ = inw.Close()
	<-done
	st, err := p.c.Runtime.ContainerStatus(ctx, p.id, false)
	if err != nil || st.GetStatus().GetState() != criapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("after detaching from the terminal: %v, %v", st.GetStatus().GetState(), err)
	}

	// stdin_once on a terminal: the end of the first session's stdin is
	// the terminal's end of file, and the container's read sees it.
	once := p.run(t, "once", func(c *criapi.ContainerConfig) { c.Tty, c.Stdin, c.StdinOnce = true, true, true },
		"sh", "-c", `while read l; do echo "line $l"; done; echo eof; exit 3`)
	resp, err = p.c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: once, Stdin: true, Stdout: true, Tty: true})
	if err != nil {
		t.Fatal(err)
	}
	var onceOut harness.SyncBuffer
	if err := harness.Stream(ctx, resp.Url, remotecommand.StreamOptions{Stdin: strings.NewReader("hello\n"), Stdout: &onceOut, Tty: true}); err != nil {
		t.Fatalf("stdin_once terminal session: %v", err)
	}
	waitFor(t, func() bool {
		st, err := p.c.Runtime.ContainerStatus(ctx, once, false)
		return err == nil && st.GetStatus().GetState() == criapi.ContainerState_CONTAINER_EXITED && st.GetStatus().GetExitCode() == 3
	}, "the stdin_once terminal container to see the end of its input")
	if got := onceOut.String(); !strings.Contains(got, "line hello") {
		t.Errorf("stdin_once terminal session: output %q", got)
	}
}

// stallingStdin is a client's stdin that sends n bytes, more than a pipe
// holds but less than the connections buffer (the client's SPDY library
// cannot close a stream its own unsent data blocks), then nothing until
// ctx ends.
type stallingStdin struct {
	ctx context.Context
	n   int
}

func (s *stallingStdin) Read(p []byte) (int, error) {
	if s.n == 0 {
		<-s.ctx.Done()
		return 0, io.EOF
	}
	k := min(len(p), s.n)
	clear(p[:k])
	s.n -= k
	return k, nil
}

const stallBytes = 256 << 10

// TestStdinStallClientLeaves: a session whose client leaves while its stdin
// is stalled (the process reads none; its pipe is full) ends in the shim
// too, for an attach and for an exec, whose process is killed.
func TestStdinStallClientLeaves(t *testing.T) {
	p := startHostPod(t, func(c *criapi.ContainerConfig) { c.Stdin = true }, "sleep", "3600")
	shim := harness.ShimPid(t, p.podID)
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", shim))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sctx, leave := context.WithTimeout(ctx, 2*time.Second)
	defer leave()
	if err := attachStream(sctx, p.c, p.id, &stallingStdin{sctx, stallBytes}, io.Discard, nil); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("attach: %v", err)
	}
	waitFor(t, func() bool { return fds() <= before }, "the shim to end the abandoned attach session")

	resp, err := p.c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: p.id, Cmd: []string{"sleep", "1234"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	sctx, leave = context.WithTimeout(ctx, 2*time.Second)
	defer leave()
	_ = harness.Stream(sctx, resp.Url, remotecommand.StreamOptions{Stdin: &stallingStdin{sctx, stallBytes}, Stdout: io.Discard})
	waitFor(t, func() bool {
		r, err := p.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: p.id, Cmd: []string{"ps"}, Timeout: 10})
		return err == nil && !strings.Contains(string(r.Stdout), "sleep 1234") && fds() <= before
	}, "the abandoned exec to be killed and its session ended")
}
