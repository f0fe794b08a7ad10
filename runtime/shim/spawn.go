package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// LogName is the shim's own log (its stderr) inside its directory.
const LogName = "shim.log"

// DetachFlag makes `crib shim` start the real shim in its own session and
// exit at once: Spawn's double fork, so the shim is never the daemon's
// child and the daemon has no zombie to reap, and no thread blocked in a
// wait per pod.
const DetachFlag = "--detach"

// Spawn starts `binary shim` for pod id on dir, detached from the caller
// (own session, stdio to dir/shim.log), and returns once its socket
// answers. A shim already serving dir makes the new one exit; Spawn then
// returns once the old one answers, so calling it again is harmless.
func Spawn(ctx context.Context, binary, id, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("spawn shim of pod %s: %w", id, err)
	}
	cmd := exec.CommandContext(ctx, binary, "shim", DetachFlag, "--id", id, "--dir", dir)
	cmd.Args[0] = "crib"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("spawn shim of pod %s: %w: %s", id, err, bytes.TrimSpace(out.Bytes()))
	}
	sock := filepath.Join(dir, SocketName)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if err := ping(ctx, sock); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("spawn shim of pod %s: no answer on %s: %w%s", id, sock, ctx.Err(), logTail(dir))
		case <-time.After(delay):
		}
	}
}

func ping(ctx context.Context, sock string) error {
	c, err := shimapi.Dial(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.List(ctx, &shimapi.Empty{})
	return err
}

// logTail is the end of the shim's log, for errors.
func logTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, LogName))
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 1024 {
		b = b[len(b)-1024:]
	}
	return " (shim log: " + string(bytes.TrimSpace(b)) + ")"
}

// Detach is the middle process of Spawn's double fork: it starts the shim
// with args (without DetachFlag) in a new session, stdin from /dev/null and
// stdout and stderr appended to dir/shim.log, and returns without waiting.
func Detach(dir string, args []string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, LogName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open shim log: %w", err)
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{Path: exe, Args: append([]string{"crib", "shim"}, args...), Dir: "/", Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start shim: %w: %w", err, errdefs.ErrUnavailable)
	}
	return errors.Join(cmd.Process.Release())
}
