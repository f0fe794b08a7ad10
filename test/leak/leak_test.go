package leak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/remotecommand"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// cycles is how many pod+container lifecycles TestPodCycles runs:
// $CRIB_LEAK_CYCLES (`make leak` sets 200, the figure), 10 otherwise
// so that `make test` stays quick.
func cycles(t *testing.T) int { return harness.EnvCount(t, "CRIB_LEAK_CYCLES", 10) }

// world is one daemon in its own network namespace, with busybox pulled.
type world struct {
	e        *harness.Env
	d        *harness.Daemon
	c        harness.Clients
	image    string
	registry string // host:port of the registry in the test's netns
	cgroup   string // the test's cgroup parent, in every hierarchy
	cg       cgroups.Manager
	// relay is the host address that reaches the streaming server.
	relay string
}

// TestPodCycles runs pod+container lifecycles (RunPodSandbox, Create and
// Start a container, ExecSync, Stop, Remove, StopPodSandbox,
// RemovePodSandbox) against one daemon and checks that they leave nothing
// behind: mounts, cgroups, pinned namespaces, processes, the daemon's open
// fds, veths, IP leases and state files are counted before and after and
// must match item for item.
//
// One cycle runs before the first count: the first pod creates what a
// daemon keeps for its lifetime (the bridge, the sealed binary's mount, the
// shims directory), which is not a leak.
func TestPodCycles(t *testing.T) {
	n := cycles(t)
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "leak/busybox:1", testregistry.Busybox(t, ""))
	e := harness.NewEnv(t)
	e.WithNetwork(fmt.Sprintf("10.89.%d.0/24", rand.IntN(200)+20))
	host := reg.ListenIn(t, "/run/netns/"+e.Netns)
	ref = strings.Replace(ref, reg.Host, host, 1)
	w := &world{e: e, d: e.Start(), image: ref, registry: host, cgroup: fmt.Sprintf("/crib-leak-%x", rand.Int64())}
	w.c = w.d.Clients()
	cg, err := manager.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	w.cg = cg
	// Whatever is left goes with the test's cgroups.
	t.Cleanup(func() {
		if err := cg.Remove(w.cgroup); err != nil {
			t.Errorf("remove the test's cgroups: %v", err)
		}
	})
	ctx := context.Background()
	if _, err := w.c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}

	scope := harness.Scope{Env: e, Daemon: w.d, Cgroup: w.cgroup, Registry: host}
	pre := harness.Take(t, scope)
	w.cycle(t, 0)
	// The first cycle's shim exits after RemovePodSandbox returns: wait
	// until the count holds still, or a slow exit on a loaded machine
	// reads as something gone during the cycles.
	before := harness.Take(t, scope)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		again := harness.Take(t, scope)
		if before.WithoutHostMounts().Diff(again.WithoutHostMounts()) == "" {
			break
		}
		before = again
	}
	t.Logf("first cycle (not counted) added: %s", pre.Diff(before))

	start := time.Now()
	for i := 1; i <= n; i++ {
		w.cycle(t, i)
		if t.Failed() {
			return
		}
	}
	elapsed := time.Since(start)

	settle := time.Now()
	after := harness.Settle(t, scope, before, 10*time.Second)
	t.Logf("%d cycles in %s (%s per cycle); settled after %s", n, elapsed.Round(time.Millisecond),
		(elapsed / time.Duration(n)).Round(time.Microsecond), time.Since(settle).Round(time.Millisecond))
	before.Log(t, after)
	before.Compare(t, after, fmt.Sprintf("after %d cycles", n))
}

// cycle runs one pod with one container through its whole life. Even
// cycles share the pod's pid namespace (a pause process), odd ones do not;
// the container traps SIGTERM and leaves a sleeping child behind, so Stop
// has an orphan to clean up.
func (w *world) cycle(t *testing.T, i int) {
	t.Helper()
	ctx := context.Background()
	uid := fmt.Sprintf("%x", rand.Int64())
	pidMode := criapi.NamespaceMode_CONTAINER
	if i%2 == 0 {
		pidMode = criapi.NamespaceMode_POD
	}
	logDir := filepath.Join(w.e.Dir, "logs", uid)
	pod := &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: fmt.Sprintf("leak-%d", i), Namespace: "leak", Uid: uid},
		Hostname:     "leak",
		LogDirectory: logDir,
		DnsConfig:    &criapi.DNSConfig{Servers: []string{"10.96.0.10"}},
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: w.cgroup + "/pod" + uid,
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &criapi.NamespaceOption{Pid: pidMode},
			},
		},
	}
	// The kubelet makes the pod's cgroup (its cgroup_parent) before
	// RunPodSandbox and deletes it after RemovePodSandbox; the runtime owns
	// only what it creates below it.
	if err := w.cg.Create(pod.Linux.CgroupParent, nil); err != nil {
		t.Fatal(err)
	}
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatalf("cycle %d: run pod: %v", i, err)
	}
	// Odd cycles' containers have a terminal (and stdin, to attach to it).
	id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "sleeper"},
		Image:    &criapi.ImageSpec{Image: w.image},
		Command:  []string{"sh", "-c", fmt.Sprintf(`trap "exit 0" TERM; httpd -f -p %d -h /etc & sleep 3600 & wait`, httpPort)},
		LogPath:  "sleeper.log",
		Tty:      i%2 == 1, Stdin: i%2 == 1,
	}, pod)
	if err != nil {
		t.Fatalf("cycle %d: create container: %v", i, err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("cycle %d: start container: %v", i, err)
	}
	resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"echo", "hi"}, Timeout: 10})
	if err != nil || string(resp.Stdout) != "hi\n" || resp.ExitCode != 0 {
		t.Fatalf("cycle %d: ExecSync = %+v, %v", i, resp, err)
	}
	w.streams(t, i, podID, id)
	if err := w.c.Runtime.StopContainer(ctx, id, 5); err != nil {
		t.Fatalf("cycle %d: stop container: %v", i, err)
	}
	if err := w.c.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("cycle %d: remove container: %v", i, err)
	}
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatalf("cycle %d: stop pod: %v", i, err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatalf("cycle %d: remove pod: %v", i, err)
	}
	// The kubelet, not the runtime, removes a pod's log directory.
	if err := os.RemoveAll(logDir); err != nil {
		t.Fatal(err)
	}
	// A plain rmdir in each hierarchy, as the kubelet does: it fails while
	// a cgroup or process is left below, and the count shows what.
	for _, mnt := range harness.CgroupMounts() {
		if err := os.Remove(filepath.Join(mnt.Dir, pod.Linux.CgroupParent)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Logf("cycle %d: remove the pod's cgroup: %v", i, err)
		}
	}
}

// httpPort is where each cycle's container serves its /etc.
const httpPort = 8080

// streams runs the streaming sessions kubectl would against a running
// container: an exec with stdin, one with a terminal, an attach whose
// client leaves while the container is quiet (to the container's terminal
// in odd cycles, with a keystroke and a resize), and a port forward to its
// httpd. The pod's shim must hold no more fds afterwards than before (the
// daemon's are counted at the end).
func (w *world) streams(t *testing.T, i int, podID, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The daemon, in the test's netns, serves streams there.
	via := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if w.relay == "" {
			w.relay = harness.RelayInto(t, "/run/netns/"+w.e.Netns, u.Host)
		}
		u.Host = w.relay
		return u.String()
	}
	shim := harness.ShimPid(t, podID)
	before := fdCount(t, shim)
	resp, err := w.c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"cat"}, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatalf("cycle %d: Exec: %v", i, err)
	}
	var out bytes.Buffer
	err = harness.Stream(ctx, via(resp.Url), remotecommand.StreamOptions{Stdin: strings.NewReader("piped\n"), Stdout: &out})
	if err != nil || out.String() != "piped\n" {
		t.Fatalf("cycle %d: exec through cat: %q, %v", i, out.String(), err)
	}
	resp, err = w.c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"tty"}, Tty: true, Stdout: true})
	if err != nil {
		t.Fatalf("cycle %d: Exec with a terminal: %v", i, err)
	}
	out.Reset()
	if err := harness.Stream(ctx, via(resp.Url), remotecommand.StreamOptions{Stdout: &out, Tty: true}); err != nil || !strings.HasPrefix(out.String(), "/dev/pts/") {
		t.Fatalf("cycle %d: exec tty: %q, %v", i, out.String(), err)
	}
	if i%2 == 1 {
		w.attachTerminal(ctx, t, i, id, via)
	} else {
		att, err := w.c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: id, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatalf("cycle %d: Attach: %v", i, err)
		}
		actx, leave := context.WithTimeout(ctx, 200*time.Millisecond)
		err = harness.Stream(actx, via(att.Url), remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
		leave()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("cycle %d: attach: %v", i, err)
		}
	}
	w.forward(ctx, t, i, podID, id, via)
	deadline := time.Now().Add(10 * time.Second)
	// Fewer is fine: the ExecSync before may still have been closing its
	// pipes when the first count was taken.
	for n := fdCount(t, shim); n > before; n = fdCount(t, shim) {
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: the shim holds %d fds after the sessions, %d before: %v", i, n, before, fdTargets(shim))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// attachTerminal attaches to a terminal container with stdin and a size,
// sees its terminal echo a keystroke, and leaves.
func (w *world) attachTerminal(ctx context.Context, t *testing.T, i int, id string, via func(string) string) {
	t.Helper()
	att, err := w.c.RawRt.Attach(ctx, &criapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
	if err != nil {
		t.Fatalf("cycle %d: Attach to a terminal: %v", i, err)
	}
	sizes := make(chan remotecommand.TerminalSize, 1)
	sizes <- remotecommand.TerminalSize{Width: 120, Height: 40}
	close(sizes)
	actx, leave := context.WithCancel(ctx)
	defer leave()
	in, inw := io.Pipe()
	var out harness.SyncBuffer
	done := make(chan error, 1)
	go func() {
		err := harness.Stream(actx, via(att.Url), remotecommand.StreamOptions{Stdin: in, Stdout: &out, Tty: true, TerminalSizeQueue: sizeQueue(sizes)})
		_ = in.Close()
		done <- err
	}()
	// Only open sessions see output: type until the echo comes back.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "ping"); time.Sleep(20 * time.Millisecond) {
		if _, err := io.WriteString(inw, "ping\n"); err != nil || time.Now().After(deadline) {
			t.Fatalf("cycle %d: no echo from the terminal (%q): %v", i, out.String(), err)
		}
	}
	leave()
	_ = inw.Close()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cycle %d: terminal attach: %v", i, err)
	}
}

// sizeQueue hands out terminal sizes until its channel closes.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q
	if !ok {
		return nil
	}
	return &s
}

// forward port-forwards to the container's httpd, fetches a page and
// stops forwarding.
func (w *world) forward(ctx context.Context, t *testing.T, i int, podID, id string, via func(string) string) {
	t.Helper()
	resp, err := w.c.RawRt.PortForward(ctx, &criapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{httpPort}})
	if err != nil {
		t.Fatalf("cycle %d: PortForward: %v", i, err)
	}
	// httpd may not listen yet in the container's first moments, and a
	// refused dial ends client-go's forwarder: ask from inside first.
	page := fmt.Sprintf("http://127.0.0.1:%d/hostname", httpPort)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"wget", "-q", "-O", "/dev/null", page}, Timeout: 10})
		if err == nil && r.ExitCode == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cycle %d: httpd does not answer inside the pod: %+v, %v", i, r, err)
		}
	}
	local, stop, ended := harness.Forward(t, via(resp.Url), httpPort)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/hostname", local))
	if err != nil {
		t.Fatalf("cycle %d: GET through the port forward: %v", i, err)
	}
	body, _ := io.ReadAll(r.Body)
	_ = r.Body.Close()
	if string(body) != "leak\n" {
		t.Fatalf("cycle %d: GET through the port forward: %s %q", i, r.Status, body)
	}
	stop()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("cycle %d: the port forward did not end when stopped", i)
	}
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	return len(fds)
}

// fdTargets lists what a process's fds point at, for failure messages.
func fdTargets(pid int) []string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		out = append(out, fd.Name()+"="+target)
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		st, _ := os.ReadFile("/proc/" + p.Name() + "/status")
		if strings.Contains(string(st), fmt.Sprintf("\nPPid:\t%d\n", pid)) {
			cmd, _ := os.ReadFile("/proc/" + p.Name() + "/cmdline")
			out = append(out, "child "+p.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}
