package shim_test

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

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// hookLog is a directory the hooks of a test write to: each appends
// "<name> <facts>" to log and saves its stdin as state.<name>. It is
// bind-mounted at /hooklog for what runs in the container.
type hookLog struct {
	t   *testing.T
	dir string
}

func newHookLog(t *testing.T) *hookLog {
	dir := t.TempDir()
	// The container's user (1000) writes here too.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "log"), 0o666); err != nil {
		t.Fatal(err)
	}
	return &hookLog{t: t, dir: dir}
}

// host is a hook run from the host's /bin/sh; facts is shell text,
// expanded by the hook, in which $1 is the log directory and $3 extra.
func (l *hookLog) host(name, facts, extra string) specs.Hook {
	script := `cat > "$1/state.$2"; echo "$2 ` + facts + `" >> "$1/log"`
	return specs.Hook{Path: "/bin/sh", Args: []string{"sh", "-c", script, "hook", l.dir, name, extra}}
}

// lines returns the log's lines split into name and facts.
func (l *hookLog) lines() [][2]string {
	b, err := os.ReadFile(filepath.Join(l.dir, "log"))
	if err != nil {
		l.t.Fatal(err)
	}
	var out [][2]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" {
			name, facts, _ := strings.Cut(line, " ")
			out = append(out, [2]string{name, facts})
		}
	}
	return out
}

func (l *hookLog) facts(name string) string {
	l.t.Helper()
	for _, line := range l.lines() {
		if line[0] == name {
			return line[1]
		}
	}
	l.t.Fatalf("no %s line in the hooks' log %v", name, l.lines())
	return ""
}

func (l *hookLog) state(name string) specs.State {
	l.t.Helper()
	var st specs.State
	b, err := os.ReadFile(filepath.Join(l.dir, "state."+name))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		l.t.Fatalf("state of the %s hook: %v (%q)", name, err, b)
	}
	return st
}

// containerCgroup is the container's cgroup directory in the memory
// hierarchy (v1) or the unified one.
func containerCgroup(p *pod, id string) string {
	if st, err := os.Stat("/sys/fs/cgroup/memory"); err == nil && st.IsDir() {
		return filepath.Join("/sys/fs/cgroup/memory", p.cgroup, id)
	}
	return filepath.Join("/sys/fs/cgroup", p.cgroup, id)
}

// hookPod is a pod whose rootfs has what the hooks in the container use.
func hookPod(t *testing.T) *pod {
	p := newPod(t)
	p.rootfs = testutil.BusyboxRootfs(t, filepath.Join(t.TempDir(), "rootfs"), "sh", "cat", "readlink", "id", "echo", "sleep", "true")
	return p
}

func hookSpec(p *pod, l *hookLog, id string, args ...string) *specs.Spec {
	spec := p.spec(id, args...)
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/hooklog", Type: "bind", Source: l.dir, Options: []string{"rbind", "rw"}})
	spec.Hooks = &specs.Hooks{}
	return spec
}

const nsFacts = `$(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/pid)`

// TestOCIHooks runs a container with a hook of every kind and checks each
// ran in its order and its place: prestart and createRuntime in the
// shim's namespaces, createContainer in the container's before pivot_root
// (the container's mounts visible under the rootfs path), startContainer
// in the container after pivot_root as its user, poststart once the
// user's process replaced the init, poststop once the container is gone.
func TestOCIHooks(t *testing.T) {
	p := hookPod(t)
	l := newHookLog(t)
	id := randomID()
	spec := hookSpec(p, l, id, "/bin/sh", "-c", "echo process $(readlink /proc/self/ns/mnt) >> /hooklog/log; exec sleep 100")
	spec.Hostname = "hooked"
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	spec.Annotations = map[string]string{"test.crib/hooks": "yes"}
	pre := l.host("prestart", nsFacts+` $HOOKVAR`, "")
	pre.Env = []string{"HOOKVAR=from-env"}
	cgroup := containerCgroup(p, id)
	spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{pre},
		CreateRuntime:   []specs.Hook{l.host("createRuntime", nsFacts, "")},
		CreateContainer: []specs.Hook{l.host("createContainer", nsFacts+` $(pwd) $(grep -c " $3/dev " /proc/self/mountinfo)`, p.rootfs)},
		StartContainer: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c",
			`cat > /hooklog/state.startContainer; echo "startContainer $(cat /proc/sys/kernel/hostname) $(readlink /proc/self/ns/mnt) $(id -u)" >> /hooklog/log`}}},
		Poststart: []specs.Hook{
			l.host("poststart", `$(tr '\0' ' ' < /proc/$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$1/state.poststart")/cmdline)`, ""),
			// A failing poststart is a warning: the next still runs, Start succeeds.
			{Path: "/bin/false"},
			l.host("poststart2", "", ""),
		},
		Poststop: []specs.Hook{l.host("poststop",
			`$([ -e "$3" ] && echo cgroup-left || echo cgroup-gone)`, cgroup)},
	}
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	hostPid, _ := os.Readlink("/proc/self/ns/pid")
	ctx := context.Background()

	st, _ := p.create(id, spec)
	bundle := filepath.Join(p.dir, "bundles", id)
	for _, name := range []string{"prestart", "createRuntime"} {
		if f := l.facts(name); !strings.HasPrefix(f, hostMnt+" "+hostPid) {
			t.Errorf("%s ran in namespaces %q, want the shim's %s %s", name, f, hostMnt, hostPid)
		}
		if s := l.state(name); s.Status != specs.StateCreating || s.Pid != int(st.Pid) || s.ID != id || s.Bundle != bundle ||
			s.Annotations["test.crib/hooks"] != "yes" || s.Version != specs.Version {
			t.Errorf("%s got state %+v, want creating, pid %d, bundle %s, the annotations", name, s, st.Pid, bundle)
		}
	}
	if f := l.facts("prestart"); !strings.HasSuffix(f, " from-env") {
		t.Errorf("prestart did not get its env: %q", f)
	}
	cc := strings.Fields(l.facts("createContainer"))
	if len(cc) != 4 || cc[0] == hostMnt || cc[1] == hostPid || cc[2] != p.rootfs || cc[3] != "1" {
		t.Errorf("createContainer: namespaces, cwd, mounts of the rootfs' /dev %q; want the container's namespaces, cwd %s, its /dev mounted before pivot_root", cc, p.rootfs)
	}
	// runc passes the init's pid as the init sees it.
	if s := l.state("createContainer"); s.Status != specs.StateCreating || s.Pid != 1 || s.Bundle != bundle {
		t.Errorf("createContainer got state %+v", s)
	}
	var onDisk specs.Spec
	if b, err := os.ReadFile(filepath.Join(bundle, "config.json")); err != nil || json.Unmarshal(b, &onDisk) != nil ||
		onDisk.Root == nil || onDisk.Root.Path != p.rootfs || onDisk.Hooks == nil || len(onDisk.Hooks.Poststart) != 3 {
		t.Errorf("the bundle's config.json: %v, %+v", err, onDisk.Root)
	}
	if names := lineNames(l.lines()); strings.Join(names, ",") != "prestart,createRuntime,createContainer" {
		t.Fatalf("after Create the hooks ran %v", names)
	}

	if _, err := p.client.Start(ctx, &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatalf("Start (with a failing poststart hook): %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(strings.Join(lineNames(l.lines()), ","), "process") })
	if f := strings.Fields(l.facts("startContainer")); len(f) != 3 || f[0] != "hooked" || f[1] != cc[0] || f[2] != "1000" {
		t.Errorf("startContainer: hostname, mount namespace, uid %q; want hooked %s 1000", f, cc[0])
	}
	if s := l.state("startContainer"); s.Status != specs.StateCreated || s.Pid != 1 {
		t.Errorf("startContainer got state %+v", s)
	}
	if f := l.facts("process"); f != cc[0] {
		t.Errorf("the process ran in mount namespace %q, want %s", f, cc[0])
	}
	if f := l.facts("poststart"); !strings.HasPrefix(f, "/bin/sh -c echo process") && !strings.HasPrefix(f, "sleep 100") {
		t.Errorf("poststart saw %q as the container's process, want the user's command", f)
	}
	if s := l.state("poststart"); s.Status != specs.StateRunning || s.Pid != int(st.Pid) {
		t.Errorf("poststart got state %+v", s)
	}
	names := lineNames(l.lines())
	if len(names) != 7 || strings.Join(names[:4], ",") != "prestart,createRuntime,createContainer,startContainer" ||
		!sameSet(names[4:], "process", "poststart", "poststart2") || indexOf(names, "poststart2") < indexOf(names, "poststart") {
		t.Errorf("hooks ran %v", names)
	}

	if _, err := p.client.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: int32(unix.SIGKILL)}); err != nil {
		t.Fatal(err)
	}
	p.wait(id)
	if strings.Contains(strings.Join(lineNames(l.lines()), ","), "poststop") {
		t.Fatal("poststop ran before Delete")
	}
	if _, err := p.client.Delete(ctx, &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if f := l.facts("poststop"); f != "cgroup-gone" {
		t.Errorf("poststop saw %q, want the container destroyed", f)
	}
	// Pid 0, as runc sends: the init's pid was reaped, and may be
	// another process's by now.
	if s := l.state("poststop"); s.Status != specs.StateStopped || s.Pid != 0 {
		t.Errorf("poststop got state %+v, want stopped, pid 0", s)
	}
	if _, err := os.Stat(bundle); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bundle outlived Delete: %v", err)
	}
}

func lineNames(lines [][2]string) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l[0])
	}
	return out
}

func sameSet(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if indexOf(got, w) < 0 {
			return false
		}
	}
	return true
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// requireGone checks that what a failed Create made is gone: the
// container's cgroup (and so its processes), its bundle, the init whose
// pid the prestart hook saw, mounts under the rootfs.
func requireGone(t *testing.T, p *pod, l *hookLog, id string) {
	t.Helper()
	if _, err := os.Stat(containerCgroup(p, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Create left its cgroup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "bundles", id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Create left its bundle: %v", err)
	}
	if pid := l.state("prestart").Pid; pid <= 0 || unix.Kill(pid, 0) == nil {
		t.Errorf("the init (pid %d) of a failed Create is still there", pid)
	}
	if n := testutil.MountsUnder(t, p.rootfs); n != 0 {
		t.Errorf("%d mounts left under the rootfs", n)
	}
	if _, err := p.client.State(context.Background(), &shimapi.ContainerRequest{Id: id}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("State of a container whose Create failed: %v, want NotFound", err)
	}
}

// TestFailingCreateContainerHook: the Create (the daemon's StartContainer)
// fails naming the hook and its output, leaves nothing behind, and the
// poststop hooks run, as runc runs them after a failed create.
func TestFailingCreateContainerHook(t *testing.T) {
	p := hookPod(t)
	l := newHookLog(t)
	id := randomID()
	spec := hookSpec(p, l, id, "/bin/true")
	spec.Hooks.Prestart = []specs.Hook{l.host("prestart", "", "")}
	spec.Hooks.CreateContainer = []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo boom-from-the-hook >&2; exit 3"}}}
	spec.Hooks.StartContainer = []specs.Hook{l.host("startContainer", "", "")}
	spec.Hooks.Poststop = []specs.Hook{l.host("poststop", "", "")}
	_, err := p.client.Create(context.Background(), &shimapi.CreateRequest{Id: id, Spec: mustJSON(t, spec)})
	if err == nil {
		t.Fatal("Create with a failing createContainer hook succeeded")
	}
	for _, want := range []string{"createContainer hook #0", "/bin/sh", "exit status 3", "boom-from-the-hook"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	requireGone(t, p, l, id)
	if names := strings.Join(lineNames(l.lines()), ","); names != "prestart,poststop" {
		t.Errorf("hooks ran %s, want prestart,poststop", names)
	}
}

// TestTimingOutHook: a createRuntime hook past its timeout is killed with
// what it started, and the Create fails saying so.
func TestTimingOutHook(t *testing.T) {
	p := hookPod(t)
	l := newHookLog(t)
	id := randomID()
	spec := hookSpec(p, l, id, "/bin/true")
	timeout := 1
	spec.Hooks.Prestart = []specs.Hook{l.host("prestart", "", "")}
	spec.Hooks.CreateRuntime = []specs.Hook{{Path: "/bin/sh", Timeout: &timeout,
		Args: []string{"sh", "-c", `sleep 100 & echo $! > "$1/child"; echo $$ > "$1/leader"; echo waiting; sleep 100`, "hook", l.dir}}}
	start := time.Now()
	_, err := p.client.Create(context.Background(), &shimapi.CreateRequest{Id: id, Spec: mustJSON(t, spec)})
	if err == nil || !strings.Contains(err.Error(), "createRuntime hook #0") || !strings.Contains(err.Error(), "timed out after 1s") ||
		!strings.Contains(err.Error(), "waiting") {
		t.Fatalf("Create = %v, want the createRuntime hook timed out", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Create took %v with a hook timeout of 1s", d)
	}
	for _, name := range []string{"leader", "child"} {
		b, err := os.ReadFile(filepath.Join(l.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		// The child, an orphan, is the shim's to reap: give it a moment.
		waitFor(t, func() bool { return pid > 0 && unix.Kill(pid, 0) != nil })
	}
	requireGone(t, p, l, id)
}

// TestFailingStartContainerHook: Start fails naming the hook, the
// container ends exited, and Delete still runs its poststop hooks.
func TestFailingStartContainerHook(t *testing.T) {
	p := hookPod(t)
	l := newHookLog(t)
	id := randomID()
	spec := hookSpec(p, l, id, "/bin/sh", "-c", "echo process >> /hooklog/log")
	spec.Hooks.StartContainer = []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo no-start; exit 5"}}}
	spec.Hooks.Poststart = []specs.Hook{l.host("poststart", "", "")}
	spec.Hooks.Poststop = []specs.Hook{l.host("poststop", "", "")}
	p.create(id, spec)
	ctx := context.Background()
	_, err := p.client.Start(ctx, &shimapi.ContainerRequest{Id: id})
	if err == nil || !strings.Contains(err.Error(), "startContainer hook #0") || !strings.Contains(err.Error(), "exit status 5") ||
		!strings.Contains(err.Error(), "no-start") {
		t.Fatalf("Start = %v, want the startContainer hook's failure", err)
	}
	if st := p.wait(id); st.Status != shimapi.Status_EXITED {
		t.Errorf("after a failed start: %v", st)
	}
	// The cgroup goes once the waiters have the exit (onExit): soon after.
	var err2 error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err2 = os.Stat(containerCgroup(p, id)); errors.Is(err2, os.ErrNotExist) || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(err2, os.ErrNotExist) {
		t.Errorf("the cgroup of a container whose start failed: %v", err2)
	}
	if _, err := p.client.Delete(ctx, &shimapi.ContainerRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if names := strings.Join(lineNames(l.lines()), ","); names != "poststop" {
		t.Errorf("hooks ran %s (and the process?), want only poststop", names)
	}
}

// TestBadHooksRefused: a hook that could not run is InvalidArgument before
// anything is made.
func TestBadHooksRefused(t *testing.T) {
	p := hookPod(t)
	zero := 0
	for name, hooks := range map[string]*specs.Hooks{
		"relative path": {CreateRuntime: []specs.Hook{{Path: "bin/true"}}},
		"zero timeout":  {Poststop: []specs.Hook{{Path: "/bin/true", Timeout: &zero}}},
	} {
		id := randomID()
		spec := p.spec(id, "/bin/true")
		spec.Hooks = hooks
		_, err := p.client.Create(context.Background(), &shimapi.CreateRequest{Id: id, Spec: mustJSON(t, spec)})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
		if _, err := os.Stat(containerCgroup(p, id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a refused Create made its cgroup: %v", name, err)
		}
	}
}
