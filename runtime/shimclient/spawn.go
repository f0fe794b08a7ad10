package shimclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Spawn starts a shim process (`binary shim`) on dir, detached from the
// caller (nsexec's constructor forks it into its own session before Go
// starts, and the caller reaps only the short-lived parent: no zombie, no
// thread blocked in a wait per shim), with stdin from /dev/null and output
// appended to dir/shim.log. It returns once the shim reports that it
// serves its socket; it serves no pod until handed one (Group.Serve). A
// shim already serving dir makes the new one exit; Spawn then returns once
// the old one answers. args are more of crib-shim shim's flags.
func Spawn(ctx context.Context, binary, dir string, args ...string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("spawn shim: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, shimapi.LogName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spawn shim: open shim log: %w", err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("spawn shim: %w", err)
	}
	defer readyR.Close()
	// memprofilerate=0: no heap profiling, whose bucket table would cost
	// every idle shim ~100 kB of touched pages.
	cmd := &exec.Cmd{Path: binary, Args: append([]string{"crib-shim", "shim", "--dir", dir}, args...), Dir: "/",
		Env:    []string{nsproto.EnvDetach + "=1", shimapi.EnvReadyFD + "=3", "GODEBUG=memprofilerate=0"},
		Stdout: logf, Stderr: logf, ExtraFiles: []*os.File{readyW}}
	err = cmd.Run() // the constructor's parent half, which exits at once
	readyW.Close()
	if err != nil {
		return fmt.Errorf("spawn shim on %s: %w: %w", dir, err, errdefs.ErrUnavailable)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = readyR.SetReadDeadline(dl)
	}
	var b [1]byte
	if n, _ := readyR.Read(b[:]); n == 1 {
		return nil
	}
	// No word from the new shim: it failed, or found an old one serving.
	sock := filepath.Join(dir, shimapi.GroupSocketName)
	if err := ping(ctx, sock); err != nil {
		return fmt.Errorf("spawn shim: no answer on %s: %w%s", sock, err, logTail(dir))
	}
	return nil
}

func ping(ctx context.Context, sock string) error {
	c, err := shimapi.DialGroup(ctx, sock)
	if errors.Is(err, shimapi.ErrShimGone) {
		// For a shim being started, no listener is a failed start, not a
		// pod whose shim is gone.
		return fmt.Errorf("%v: %w", err, errdefs.ErrUnavailable)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Pods(ctx, &shimapi.Empty{})
	return err
}

// logTail is the end of the shim's log, for errors.
func logTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, shimapi.LogName))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 1024 {
		b = b[len(b)-1024:]
	}
	return " (shim log: " + string(bytes.TrimSpace(b)) + ")"
}
