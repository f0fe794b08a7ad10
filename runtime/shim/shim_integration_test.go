package shim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/shim"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// TestLogsAndExitCodes: output of both streams in the CRI format, a line
// longer than the limit split into P pieces, exit 0 → Completed and exit 3
// → Error, recorded in the state file too.
func TestLogsAndExitCodes(t *testing.T) {
	p := newPod(t)
	id, logPath := p.run("/bin/sh", "-c", "echo hello out; echo hello err >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; printf tail")
	st := p.wait(id)
	if st.Status != shimapi.Status_EXITED || st.ExitCode != 0 || st.Reason != shim.ReasonCompleted {
		t.Fatalf("state %v, want exited 0 Completed", st)
	}
	if st.StartedAt == 0 || st.FinishedAt < st.StartedAt || st.CreatedAt > st.StartedAt {
		t.Errorf("times created %d started %d finished %d", st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	lines := readLog(t, logPath)
	var out []logLine
	var sawErr bool
	for _, l := range lines {
		if l.stream == "stderr" {
			sawErr = l.tag == "F" && l.content == "hello err"
			continue
		}
		out = append(out, l)
	}
	if !sawErr {
		t.Errorf("no stderr line in %v", lines)
	}
	if len(out) != 4 {
		t.Fatalf("stdout lines %d, want 4: %v", len(out), out)
	}
	if out[0] != (logLine{"stdout", "F", "hello out"}) {
		t.Errorf("first line %v", out[0])
	}
	if out[1].tag != "P" || len(out[1].content) != 16384 || out[2].tag != "F" || len(out[2].content) != 20000-16384 {
		t.Errorf("the 20000 byte line: %s %d, %s %d", out[1].tag, len(out[1].content), out[2].tag, len(out[2].content))
	}
	if out[3] != (logLine{"stdout", "P", "tail"}) {
		t.Errorf("output ending without newline: %v, want a P line", out[3])
	}

	id3, _ := p.run("/bin/sh", "-c", "exit 3")
	if st := p.wait(id3); st.ExitCode != 3 || st.Reason != shim.ReasonError {
		t.Fatalf("state %v, want exit 3 Error", st)
	}
	var rec struct {
		Status   string `json:"status"`
		ExitCode int    `json:"exitCode"`
		Reason   string `json:"reason"`
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "containers", id3+".json"))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.Status != "exited" || rec.ExitCode != 3 || rec.Reason != "Error" {
		t.Fatalf("state file %s (%v)", b, err)
	}
}

// TestOOMKilled: a container that outgrows its 16 MiB limit is OOMKilled.
func TestOOMKilled(t *testing.T) {
	p := newPod(t)
	id := randomID()
	spec := p.spec(id, "/bin/sh", "-c", `x=.........................................; while :; do x="$x$x"; done`)
	limit := int64(16 << 20)
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	p.create(id, spec)
	if _, err := p.client.Start(context.Background(), &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	st := p.wait(id)
	if st.Reason != shim.ReasonOOMKilled || st.ExitCode != 137 {
		t.Fatalf("state %v, want OOMKilled with 137", st)
	}
}

// TestReopenLog: after the kubelet renames the log away, output keeps
// going to the renamed file until ReopenLog, then to a new one.
func TestReopenLog(t *testing.T) {
	p := newPod(t)
	id, logPath := p.run("/bin/sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done")
	waitFor(t, func() bool { return len(readLog(t, logPath)) > 0 })
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.ReopenLog(context.Background(), &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := os.Stat(logPath); return err == nil && len(readLog(t, logPath)) > 1 })
	old, cur := readLog(t, logPath+".1"), readLog(t, logPath)
	last, _ := strconv.Atoi(strings.TrimPrefix(old[len(old)-1].content, "tick "))
	first, _ := strconv.Atoi(strings.TrimPrefix(cur[0].content, "tick "))
	if first != last+1 {
		t.Errorf("rotated file ends at tick %d, new file starts at %d", last, first)
	}
	if _, err := p.client.Kill(context.Background(), &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(id); st.ExitCode != 137 || st.Reason != shim.ReasonError {
		t.Fatalf("after SIGKILL: %v", st)
	}
	if _, err := p.client.ReopenLog(context.Background(), &shimapi.ContainerRequest{Id: id}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("ReopenLog of an exited container: %v, want FailedPrecondition", err)
	}
}

// TestExecSync: separate stdout and stderr, the exit code, the container's
// namespaces and cgroup, a timeout that kills the process.
func TestExecSync(t *testing.T) {
	p := newPod(t)
	id, _ := p.run("/bin/sleep", "1000")
	ctx := context.Background()
	proc := func(args ...string) []byte {
		b, _ := json.Marshal(specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}})
		return b
	}
	resp, err := p.client.ExecSync(ctx, &shimapi.ExecSyncRequest{Id: id,
		Process: proc("/bin/sh", "-c", "echo out; echo err >&2; cat /proc/self/cgroup | grep -c "+id+"; echo $$; exit 5")})
	if err != nil {
		t.Fatal(err)
	}
	outLines := strings.Split(strings.TrimSpace(string(resp.Stdout)), "\n")
	if resp.ExitCode != 5 || string(resp.Stderr) != "err\n" || len(outLines) != 3 || outLines[0] != "out" || outLines[1] == "0" {
		t.Fatalf("exec: code %d stdout %q stderr %q", resp.ExitCode, resp.Stdout, resp.Stderr)
	}
	if pid, _ := strconv.Atoi(outLines[2]); pid <= 1 || pid > 100 {
		t.Errorf("exec'd shell has pid %d: not in the container's pid namespace", pid)
	}
	start := time.Now()
	_, err = p.client.ExecSync(ctx, &shimapi.ExecSyncRequest{Id: id, Process: proc("/bin/sleep", "30"), Timeout: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exec past its timeout: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeout of 1s took %v", d)
	}
	if _, err := p.client.ExecSync(ctx, &shimapi.ExecSyncRequest{Id: id, Process: []byte("{")}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad process: %v, want InvalidArgument", err)
	}
	if _, err := p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGKILL), All: true}); err != nil {
		t.Fatal(err)
	}
	p.wait(id)
	if _, err := p.client.ExecSync(ctx, &shimapi.ExecSyncRequest{Id: id, Process: proc("/bin/true")}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec in an exited container: %v, want FailedPrecondition", err)
	}
}

// TestKillWaitDelete: Wait honours its context, Delete refuses a running
// container, Kill of all processes ends it, Delete removes cgroup and
// record, and unknown ids are NotFound.
func TestKillWaitDelete(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	id, _ := p.run("/bin/sh", "-c", "sleep 1000 & sleep 1000")
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := p.client.Wait(short, &shimapi.ContainerRequest{Id: id}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a running container with a short deadline: %v", err)
	}
	if _, err := p.client.Delete(ctx, &shimapi.ContainerRequest{Id: id}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Delete of a running container: %v, want FailedPrecondition", err)
	}
	if _, err := p.client.Start(ctx, &shimapi.ContainerRequest{Id: id}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second Start: %v, want FailedPrecondition", err)
	}
	// SIGTERM to every process: the shell is pid 1 of its namespace and
	// ignores it, the sleeps die.
	if _, err := p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGTERM), All: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(id); st.ExitCode != 137 {
		t.Fatalf("after SIGKILL: %v", st)
	}
	if _, err := p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGKILL)}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Kill of an exited container: %v, want FailedPrecondition", err)
	}
	if _, err := p.client.Delete(ctx, &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", p.cgroup, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cgroup of a deleted container: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "containers", id+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file of a deleted container: %v", err)
	}
	for name, call := range map[string]func() error{
		"State":  func() error { _, err := p.client.State(ctx, &shimapi.ContainerRequest{Id: id}); return err },
		"Delete": func() error { _, err := p.client.Delete(ctx, &shimapi.ContainerRequest{Id: id}); return err },
		"Kill":   func() error { _, err := p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: 9}); return err },
	} {
		if err := call(); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s of a deleted container: %v, want NotFound", name, err)
		}
	}

	// A created, never started container can be deleted; its init goes.
	id2 := randomID()
	st, _ := p.create(id2, p.spec(id2, "/bin/true"))
	if _, err := p.client.Delete(ctx, &shimapi.ContainerRequest{Id: id2}); err != nil {
		t.Fatal(err)
	}
	if unix.Kill(int(st.Pid), 0) == nil {
		t.Errorf("init %d of a deleted created container still exists", st.Pid)
	}
}

// TestBadCreate: malformed requests are InvalidArgument and leave nothing;
// a taken id is AlreadyExists.
func TestBadCreate(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	id := randomID()
	noProcess := p.spec(id, "/bin/true")
	noProcess.Process = nil
	for name, req := range map[string]*shimapi.CreateRequest{
		"bad json":              {Id: id, Spec: []byte("{")},
		"no cgroup":             {Id: id, Spec: []byte(`{"process":{"args":["x"]},"root":{"path":"/"},"linux":{}}`)},
		"bad id":                {Id: "../x", Spec: []byte("{}")},
		"tty without a process": {Id: id, Spec: mustJSON(t, noProcess), Tty: true},
	} {
		if _, err := p.client.Create(ctx, req); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	missing := p.spec(id, "/bin/no-such-command")
	if _, err := p.client.Create(ctx, &shimapi.CreateRequest{Id: id, Spec: mustJSON(t, missing)}); err == nil ||
		!strings.Contains(err.Error(), "no-such-command") {
		t.Errorf("missing command: %v", err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", p.cgroup, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Create left its cgroup: %v", err)
	}
	p.create(id, p.spec(id, "/bin/true"))
	if _, err := p.client.Create(ctx, &shimapi.CreateRequest{Id: id, Spec: mustJSON(t, p.spec(id, "/bin/true"))}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Create: %v, want AlreadyExists", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStartPauseAndShutdown: pause is pid 1 of a new pid namespace in the
// pod cgroup; Shutdown refuses while a container runs, then kills pause
// and the shim exits.
func TestStartPauseAndShutdown(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	resp, err := p.client.StartPause(ctx, &shimapi.StartPauseRequest{Cgroup: p.cgroup})
	if err != nil {
		t.Fatal(err)
	}
	pause := int(resp.Pid)
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pause) + "/status")
	if !strings.Contains(string(status), "NSpid:\t"+strconv.Itoa(pause)+"\t1\n") {
		t.Errorf("pause is not pid 1 of a new pid namespace:\n%s", status)
	}
	if cg, _ := os.ReadFile("/proc/" + strconv.Itoa(pause) + "/cgroup"); !strings.Contains(string(cg), p.cgroup) {
		t.Errorf("pause not in %s:\n%s", p.cgroup, cg)
	}
	if _, err := p.client.StartPause(ctx, &shimapi.StartPauseRequest{}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second StartPause: %v, want AlreadyExists", err)
	}
	if _, err := p.client.StartPause(ctx, &shimapi.StartPauseRequest{Namespaces: map[string]string{"mnt": "/x"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("StartPause joining mnt: %v, want InvalidArgument", err)
	}
	id, _ := p.run("/bin/sleep", "1000")
	if _, err := p.client.Shutdown(ctx, &shimapi.Empty{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Shutdown with a running container: %v, want FailedPrecondition", err)
	}
	_, _ = p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGKILL)})
	p.wait(id)
	shimPid := p.shimPid()
	g := dialGroup(t, p.groupDir)
	defer g.Close()
	if _, err := g.Exit(ctx, &shimapi.Empty{}); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), p.id) {
		t.Fatalf("Exit while serving a pod: %v, want FailedPrecondition naming it", err)
	}
	if _, err := p.client.Shutdown(ctx, &shimapi.Empty{}); err != nil {
		t.Fatal(err)
	}
	if unix.Kill(pause, 0) == nil {
		t.Error("pause survived Shutdown")
	}
	// The pod's sockets close; the process waits for Exit.
	waitFor(t, func() bool {
		_, err := os.Stat(filepath.Join(p.dir, shimapi.SocketName))
		return errors.Is(err, os.ErrNotExist)
	})
	if pods, err := g.Pods(ctx, &shimapi.Empty{}); err != nil || len(pods.PodIds) != 0 {
		t.Fatalf("Pods after Shutdown: %v, %v, want none", pods, err)
	}
	if _, err := g.Serve(ctx, &shimapi.ServeRequest{PodId: "x", Dir: p.dir}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Serve of a bad pod id: %v, want InvalidArgument", err)
	}
	if _, err := g.Serve(ctx, &shimapi.ServeRequest{PodId: randomID(), Dir: p.dir}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Serve of a pod from another pod's dir: %v, want InvalidArgument", err)
	}
	if _, err := g.Exit(ctx, &shimapi.Empty{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return unix.Kill(shimPid, 0) != nil })
	if _, err := os.Stat(filepath.Join(p.groupDir, shimapi.GroupSocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shim socket after Exit: %v", err)
	}
}

// TestOneShimSeveralPods: one process serves two pods, each on its own
// socket with its own containers; one pod shut down leaves the other
// served, and its containers' exits still come through.
func TestOneShimSeveralPods(t *testing.T) {
	a, b := newPod(t), unservedPod(t)
	b.serveIn(a.groupDir)
	if a.shimPid() != b.shimPid() {
		t.Fatalf("pods served by pids %d and %d, want one", a.shimPid(), b.shimPid())
	}
	ctx := context.Background()
	ida, _ := a.run("/bin/sh", "-c", "exit 3")
	idb, logb := b.run("/bin/sh", "-c", "sleep 1; echo b; exit 5")
	if _, err := b.client.State(ctx, &shimapi.ContainerRequest{Id: ida}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("pod b sees pod a's container: %v, want NotFound", err)
	}
	if st := a.wait(ida); st.ExitCode != 3 {
		t.Errorf("pod a's container: %v", st)
	}
	if _, err := a.client.Delete(ctx, &shimapi.ContainerRequest{Id: ida}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Shutdown(ctx, &shimapi.Empty{}); err != nil {
		t.Fatal(err)
	}
	if st := b.wait(idb); st.ExitCode != 5 {
		t.Errorf("pod b's container after pod a left: %v", st)
	}
	if lines := readLog(t, logb); len(lines) != 1 || lines[0].content != "b" {
		t.Errorf("pod b's log: %v", lines)
	}
	g := dialGroup(t, a.groupDir)
	defer g.Close()
	if pods, err := g.Pods(ctx, &shimapi.Empty{}); err != nil || len(pods.PodIds) != 1 || pods.PodIds[0] != b.id {
		t.Errorf("Pods: %v, %v, want only %s", pods, err, b.id)
	}
}

// TestReconnect: the daemon's connection going away mid-Wait (a daemon
// restart) changes nothing: a new connection sees the running container,
// and its exit while nobody was connected with the real exit code.
func TestReconnect(t *testing.T) {
	p := newPod(t)
	id, _ := p.run("/bin/sh", "-c", "sleep 2; exit 7")
	waiting := make(chan error, 1)
	go func() {
		_, err := p.client.Wait(context.Background(), &shimapi.ContainerRequest{Id: id})
		waiting <- err
	}()
	time.Sleep(100 * time.Millisecond)
	_ = p.client.Close() // as a killed daemon would
	if err := <-waiting; err == nil {
		t.Fatal("Wait on a closed connection returned no error")
	}
	p.connect()
	st, err := p.client.State(context.Background(), &shimapi.ContainerRequest{Id: id})
	if err != nil || st.Status != shimapi.Status_RUNNING {
		t.Fatalf("after reconnecting: %v, %v", st, err)
	}
	_ = p.client.Close()
	time.Sleep(2500 * time.Millisecond) // it exits with nobody connected
	p.connect()
	if st := p.wait(id); st.ExitCode != 7 || st.Reason != shim.ReasonError {
		t.Fatalf("exit seen after reconnecting: %v", st)
	}
}

// TestShimRestart: a new shim on the same dir reports exited containers
// with their real codes and the ones that were running as exited with
// reason Unknown, and kills what was left of them.
func TestShimRestart(t *testing.T) {
	p := newPod(t)
	done, _ := p.run("/bin/sh", "-c", "exit 4")
	p.wait(done)
	running, _ := p.run("/bin/sleep", "1000")
	st, _ := p.client.State(context.Background(), &shimapi.ContainerRequest{Id: running})
	old := p.shimPid()
	if err := unix.Kill(old, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone, or a zombie: its files, the socket's lock among them, are
	// closed only then (a refused connection can come a moment earlier).
	waitFor(t, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", old))
		return err != nil || strings.Contains(string(b), ") Z ")
	})
	waitFor(t, func() bool { return p.pingFails() })
	p.spawn()
	list, err := p.client.List(context.Background(), &shimapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*shimapi.ContainerState{}
	for _, c := range list.Containers {
		got[c.Id] = c
	}
	if c := got[done]; c == nil || c.ExitCode != 4 || c.Reason != shim.ReasonError {
		t.Errorf("exited container after restart: %v", c)
	}
	if c := got[running]; c == nil || c.Status != shimapi.Status_EXITED || c.Reason != shim.ReasonUnknown {
		t.Errorf("running container after restart: %v", c)
	}
	waitFor(t, func() bool { return unix.Kill(int(st.Pid), 0) != nil })
	for _, id := range []string{done, running} {
		if _, err := p.client.Delete(context.Background(), &shimapi.ContainerRequest{Id: id}); err != nil {
			t.Errorf("Delete %s after restart: %v", id, err)
		}
	}
}

func (p *pod) pingFails() bool {
	c, err := shimapi.Dial(context.Background(), filepath.Join(p.dir, shimapi.SocketName))
	if err != nil {
		return true
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.List(ctx, &shimapi.Empty{})
	return err != nil
}

// TestIdleMemory reports the shim's memory idle and with five sleeping
// containers (not an assertion: see docs/benchmarks.md).
func TestIdleMemory(t *testing.T) {
	p := newPod(t)
	pid := p.shimPid()
	time.Sleep(500 * time.Millisecond)
	rss, pss, anon := memory(t, pid)
	t.Logf("shim with 0 containers: RSS %d KiB, PSS %d KiB, anonymous %d KiB", rss, pss, anon)
	for range 5 {
		p.run("/bin/sleep", "1000")
	}
	time.Sleep(2 * time.Second)
	rss, pss, anon = memory(t, pid)
	threads, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	t.Logf("shim with 5 containers: RSS %d KiB, PSS %d KiB, anonymous %d KiB, %d threads", rss, pss, anon, len(threads))
	_ = unix.Kill(pid, syscall.Signal(0))
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestJoinOnlyThePodsProcesses: a namespace named through /proc/<pid> is
// joined only while that pid is the pod's pause or one of its running
// containers: once the pause is gone (its pid free for reuse), or for a
// process that is not the pod's, Create is FailedPrecondition and starts
// nothing in the other process's namespace.
func TestJoinOnlyThePodsProcesses(t *testing.T) {
	p := newPod(t)
	ctx := context.Background()
	resp, err := p.client.StartPause(ctx, &shimapi.StartPauseRequest{Cgroup: p.cgroup})
	if err != nil {
		t.Fatal(err)
	}
	joining := func(pid int) *specs.Spec {
		id := randomID()
		spec := p.spec(id, "/bin/sleep", "1000")
		spec.Linux.Namespaces[0].Path = fmt.Sprintf("/proc/%d/ns/pid", pid)
		return spec
	}
	create := func(spec *specs.Spec) error {
		id := filepath.Base(spec.Linux.CgroupsPath)
		_, err := p.client.Create(ctx, &shimapi.CreateRequest{Id: id, Spec: mustJSON(t, spec)})
		return err
	}
	// The pause's namespace, and a running container's (pid mode TARGET).
	if err := create(joining(int(resp.Pid))); err != nil {
		t.Fatalf("join the pause's pid namespace: %v", err)
	}
	target, _ := p.run("/bin/sleep", "1000")
	st, err := p.client.State(ctx, &shimapi.ContainerRequest{Id: target})
	if err != nil {
		t.Fatal(err)
	}
	if err := create(joining(int(st.Pid))); err != nil {
		t.Fatalf("join a running container's pid namespace: %v", err)
	}
	// This test's own process stands for a stranger that took a pid.
	if err := create(joining(os.Getpid())); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("join a process that is not the pod's: %v, want FailedPrecondition", err)
	}
	if err := unix.Kill(int(resp.Pid), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return unix.Kill(int(resp.Pid), 0) != nil })
	if err := create(joining(int(resp.Pid))); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("join the pid namespace of a pause that exited: %v, want FailedPrecondition", err)
	}
	_, _ = p.client.Kill(ctx, &shimapi.KillRequest{Id: target, Signal: int32(unix.SIGKILL), All: true})
	p.wait(target)
}

// TestSlowLaunchStallsNoOtherPod: an exec into a container whose cgroup is
// frozen does not get past its start, and holds its launch for as long.
// The other pod of the same process still starts a container, and that
// container's exit is still recorded: a launch holds only what it needs
// of the process's one reaper. (Before, it held the reaper itself: every
// exit of every pod in the process waited for the slow launch.)
func TestSlowLaunchStallsNoOtherPod(t *testing.T) {
	a, b := newPod(t), unservedPod(t)
	b.serveIn(a.groupDir)
	id, _ := a.run("/bin/sleep", "1000")
	freeze := filepath.Join("/sys/fs/cgroup/freezer", a.cgroup, id, "freezer.state")
	frozen, thawed := "FROZEN", "THAWED"
	if _, err := os.Stat(freeze); err != nil {
		freeze, frozen, thawed = filepath.Join("/sys/fs/cgroup", a.cgroup, id, "cgroup.freeze"), "1", "0"
	}
	if err := os.WriteFile(freeze, []byte(frozen), 0); err != nil {
		t.Fatalf("freeze the container: %v", err)
	}
	thaw := func() { _ = os.WriteFile(freeze, []byte(thawed), 0) }
	defer thaw()
	proc, _ := json.Marshal(specs.Process{Args: []string{"/bin/true"}, Cwd: "/", Env: []string{"PATH=/bin"}})
	execDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := a.client.ExecSync(ctx, &shimapi.ExecSyncRequest{Id: id, Process: proc})
		execDone <- err
	}()
	time.Sleep(300 * time.Millisecond) // the exec's stage 0 is in the frozen cgroup

	started := make(chan *shimapi.ContainerState, 1)
	go func() {
		// Not b.run: no Fatal off the test's goroutine.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		other := randomID()
		// In the host's pid namespace, its background sleep outlives it
		// and becomes the shim's orphan, for the shim's reaper to wait for.
		spec := b.spec(other, "/bin/sh", "-c", "sleep 0.2 & exit 3")
		spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
		data, _ := json.Marshal(spec)
		var st *shimapi.ContainerState
		if _, err := b.client.Create(ctx, &shimapi.CreateRequest{Id: other, Spec: data}); err == nil {
			if _, err := b.client.Start(ctx, &shimapi.ContainerRequest{Id: other}); err == nil {
				st, _ = b.client.Wait(ctx, &shimapi.ContainerRequest{Id: other})
			}
		}
		started <- st
	}()
	var other *shimapi.ContainerState
	select {
	case other = <-started:
		if other == nil || other.ExitCode != 3 {
			t.Errorf("the other pod's container: %v, want exit 3", other)
		}
	case <-time.After(15 * time.Second):
		t.Error("the other pod's container did not start and exit within 15 s of a slow launch in the same process")
	}
	// The orphan is reaped too, with the exec's stage 0 still frozen.
	time.Sleep(time.Second) // the orphan's sleep is over
	shim := a.shimPid()
	deadline := time.Now().Add(10 * time.Second)
	for zombies := zombieChildren(t, shim); len(zombies) > 0; zombies = zombieChildren(t, shim) {
		if time.Now().After(deadline) {
			t.Errorf("the shim's orphans %v are still zombies while a launch is frozen", zombies)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-execDone:
		t.Fatalf("the exec into a frozen container ended: %v", err)
	default:
	}
	thaw()
	select {
	case err := <-execDone:
		if err != nil {
			t.Errorf("the exec after the thaw: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the exec did not end after the thaw")
	}
	if other == nil {
		<-started // the goroutine ends before the pods' cleanup
	}
}

// zombieChildren lists the children of pid that have exited and wait to be
// reaped ("pid comm").
func zombieChildren(t *testing.T, pid int) []string {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []string
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'+' '.
		i := strings.LastIndex(string(data), ") ")
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(data)[i+2:])
		if len(fields) > 1 && fields[0] == "Z" && fields[1] == strconv.Itoa(pid) {
			out = append(out, strings.TrimSuffix(filepath.Base(filepath.Dir(f)), "/")+" "+string(data)[strings.Index(string(data), "(")+1:i])
		}
	}
	return out
}
