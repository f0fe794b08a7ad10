package ocihook

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func sh(script string, args ...string) specs.Hook {
	return specs.Hook{Path: "/bin/sh", Args: append([]string{"sh", "-c", script, "hook"}, args...)}
}

func seconds(n int) *int { return &n }

func TestStateArgsEnvDir(t *testing.T) {
	dir := t.TempDir()
	state, _ := json.Marshal(specs.State{Version: specs.Version, ID: "c1", Status: specs.StateCreating, Pid: 42,
		Bundle: "/b", Annotations: map[string]string{"k": "v"}})
	h := sh(`cat > state; printf '%s\n' "$0" "$@" > args; env > env; pwd > cwd`, "one", "two words")
	h.Env = []string{"A=1", "B=two"}
	if err := Run(context.Background(), h, state, Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var got specs.State
	if err := json.Unmarshal([]byte(read("state")), &got); err != nil || got.ID != "c1" || got.Pid != 42 ||
		got.Status != specs.StateCreating || got.Bundle != "/b" || got.Annotations["k"] != "v" {
		t.Errorf("state on stdin %q (%v)", read("state"), err)
	}
	if a := read("args"); a != "hook\none\ntwo words\n" {
		t.Errorf("args %q", a)
	}
	// Exactly the hook's env (sh adds PWD and may add SHLVL/_), none of ours.
	for _, kv := range strings.Split(strings.TrimSpace(read("env")), "\n") {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "A", "B", "PWD", "SHLVL", "_", "OLDPWD":
		default:
			t.Errorf("the hook saw %q, which its env did not set", kv)
		}
	}
	if e := read("env"); !strings.Contains(e, "A=1\n") || !strings.Contains(e, "B=two\n") {
		t.Errorf("env %q", e)
	}
	if c := strings.TrimSpace(read("cwd")); c != dir {
		t.Errorf("cwd %q, want %q", c, dir)
	}
}

func TestNoArgsMeansPathAsArgv0(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hook")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$0 $#\" > "+dir+"/out\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), specs.Hook{Path: script}, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out")); string(b) != script+" 0\n" {
		t.Errorf("argv %q", b)
	}
}

func TestFailureNamesExitAndOutput(t *testing.T) {
	err := Run(context.Background(), sh(`echo to stdout; echo to stderr >&2; exit 3`), nil, Options{})
	var he *Error
	if !errors.As(err, &he) {
		t.Fatalf("Run = %v, want *Error", err)
	}
	for _, want := range []string{"/bin/sh", "exit status 3", "to stdout", "to stderr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	err = Run(context.Background(), sh(`kill -USR1 $$`), nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "killed by signal 10") {
		t.Errorf("a hook killed by SIGUSR1: %v", err)
	}
	if err := Run(context.Background(), specs.Hook{Path: "/nonexistent/hook"}, nil, Options{}); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/hook") || !errors.Is(err, unix.ENOENT) {
		t.Errorf("a missing hook: %v", err)
	}
}

func TestOutputIsBounded(t *testing.T) {
	err := Run(context.Background(), sh(`i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; exit 1`), nil, Options{})
	var he *Error
	if !errors.As(err, &he) {
		t.Fatalf("Run = %v", err)
	}
	if len(he.Output) > MaxOutput+len("…") || !strings.HasPrefix(he.Output, "…") || !strings.HasSuffix(he.Output, "line 2999\n") {
		t.Errorf("output of %d bytes, %q…%q", len(he.Output), he.Output[:20], he.Output[len(he.Output)-20:])
	}
}

func TestRefusesBadHooks(t *testing.T) {
	for _, h := range []specs.Hook{{Path: "bin/true"}, {Path: ""}, {Path: "/bin/true", Timeout: seconds(0)}, {Path: "/bin/true", Timeout: seconds(-1)}} {
		if err := Run(context.Background(), h, nil, Options{}); err == nil {
			t.Errorf("Run(%+v): no error", h)
		}
	}
}

// alive reports whether pid runs (and is not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestTimeoutKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	h := sh(`sleep 100 & echo $! > ` + dir + `/child; echo $$ > ` + dir + `/leader; echo started; sleep 100`)
	h.Timeout = seconds(1)
	start := time.Now()
	err := Run(context.Background(), h, nil, Options{})
	var he *Error
	if !errors.As(err, &he) || !he.TimedOut || !strings.Contains(err.Error(), "timed out after 1s") || !strings.Contains(err.Error(), "started") {
		t.Fatalf("Run = %v, want a timeout naming the output", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v", d)
	}
	for _, name := range []string{"leader", "child"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		// The child, an orphan now, may wait a moment for its reaper.
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("the hook's %s (%d) still runs", name, pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func TestContextEndKillsTheHook(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := Run(ctx, sh(`sleep 100`), nil, Options{})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want cancelled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v", d)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	h := sh(`sleep 100`)
	h.Timeout = seconds(60)
	if err := Run(ctx, h, nil, Options{}); err == nil || !strings.Contains(err.Error(), "caller's deadline") {
		t.Fatalf("Run past the caller's deadline = %v", err)
	}
}

// A hook that never reads its stdin, or leaves a child holding its
// output, does not hold the caller.
func TestHookThatIgnoresStdinOrLeavesAChild(t *testing.T) {
	big := make([]byte, 1<<20)
	dir := t.TempDir()
	start := time.Now()
	if err := Run(context.Background(), sh(`sleep 100 & echo $! > `+dir+`/child; echo done`), big, Options{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v", d)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "child"))
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		_ = unix.Kill(pid, unix.SIGKILL)
	} else {
		t.Errorf("child pid %q", b)
	}
}

// The hook gets stdin, stdout and stderr and nothing else of its caller,
// also an fd the caller made without O_CLOEXEC.
func TestNoFdLeaks(t *testing.T) {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY, 0) // inheritable on purpose
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// ls's own fds: the three it inherited and the directory it reads.
	err = Run(context.Background(), sh(`ls -l /proc/self/fd; exit 1`), nil, Options{})
	var he *Error
	if !errors.As(err, &he) {
		t.Fatalf("Run = %v", err)
	}
	var fds []string
	for _, l := range strings.Split(he.Output, "\n") {
		if name, target, ok := strings.Cut(l, " -> "); ok && !strings.HasSuffix(target, "/fd") {
			f := strings.Fields(name)
			fds = append(fds, f[len(f)-1]+" "+target)
		}
	}
	if len(fds) != 3 || !strings.HasPrefix(fds[0], "0 /memfd:oci-state") || !strings.HasPrefix(fds[1], "1 pipe:") || !strings.HasPrefix(fds[2], "2 pipe:") {
		t.Errorf("the hook's fds: %q\n%s", fds, he.Output)
	}
}

// A Forker sees the fork and reaps: the shim's reaper does it that way.
func TestForker(t *testing.T) {
	var forked, reaped int
	f := func(fork func() (int, error)) (func() unix.WaitStatus, error) {
		pid, err := fork()
		if err != nil {
			return nil, err
		}
		forked = pid
		return func() unix.WaitStatus {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, 0, nil)
			reaped = pid
			return ws
		}, nil
	}
	if err := Run(context.Background(), sh(`exit 4`), nil, Options{Fork: f}); err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("Run = %v", err)
	}
	if forked == 0 || reaped != forked {
		t.Errorf("forked %d, reaped %d", forked, reaped)
	}
}

func TestEach(t *testing.T) {
	h := specs.Hook{Path: "/x"}
	all := Each(&specs.Hooks{Poststop: []specs.Hook{h}, Prestart: []specs.Hook{h, h}, StartContainer: []specs.Hook{h}})
	var got []string
	for _, n := range all {
		got = append(got, n.String())
	}
	want := "prestart hook #0 (/x),prestart hook #1 (/x),startContainer hook #0 (/x),poststop hook #0 (/x)"
	if strings.Join(got, ",") != want {
		t.Errorf("Each = %v", got)
	}
	if Each(nil) != nil {
		t.Error("Each(nil) is not empty")
	}
}
