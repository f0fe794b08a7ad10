package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/remotecommand"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// hostPod runs a host-network pod (no CNI needed) with one container.
func hostPod(t *testing.T, cmd ...string) (harness.Clients, string, string) {
	t.Helper()
	p := startHostPod(t, nil, cmd...)
	return p.c, p.podID, p.id
}

// streamPod is a running host-network pod and its first container.
type streamPod struct {
	d         *harness.Daemon
	c         harness.Clients
	podID, id string
	pod       *criapi.PodSandboxConfig
	ref       string
}

// startHostPod runs a host-network pod; edit, if given, changes the
// container's config before it is created.
func startHostPod(t *testing.T, edit func(*criapi.ContainerConfig), cmd ...string) streamPod {
	t.Helper()
	return startHostPodIn(t, harness.NewEnv(t), edit, cmd...)
}

// startHostPodIn is startHostPod with a daemon of the given env.
func startHostPodIn(t *testing.T, e *harness.Env, edit func(*criapi.ContainerConfig), cmd ...string) streamPod {
	t.Helper()
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "stream/busybox:1", testregistry.Busybox(t, ""))
	d := e.Start()
	c := d.Clients()
	ctx := context.Background()
	if _, err := c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("/crib-e2e-stream-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		if cg, err := manager.Open("/proc/self/mountinfo"); err == nil {
			_ = cg.Remove(parent)
		}
	})
	pod := &criapi.PodSandboxConfig{
		Metadata: &criapi.PodSandboxMetadata{Name: "stream", Namespace: "e2e", Uid: "s1"},
		Linux: &criapi.LinuxPodSandboxConfig{CgroupParent: parent + "/pods1", SecurityContext: &criapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_CONTAINER}}},
	}
	podID, err := c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Runtime.StopPodSandbox(ctx, podID); _ = c.Runtime.RemovePodSandbox(ctx, podID) })
	p := streamPod{d: d, c: c, podID: podID, pod: pod, ref: ref}
	p.id = p.run(t, "main", edit, cmd...)
	return p
}

// run creates and starts a container in the pod.
func (p streamPod) run(t *testing.T, name string, edit func(*criapi.ContainerConfig), cmd ...string) string {
	t.Helper()
	ctx := context.Background()
	cfg := &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: p.ref}, Command: cmd,
		Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{
			NamespaceOptions: &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_CONTAINER}}},
	}
	if edit != nil {
		edit(cfg)
	}
	id, err := p.c.Runtime.CreateContainer(ctx, p.podID, cfg, p.pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// execStream runs one exec session the way kubectl exec does (SPDY).
func execStream(ctx context.Context, c harness.Clients, id string, stdin string, cmd ...string) (string, string, error) {
	resp, err := c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: stdin != "", Stdout: true, Stderr: true})
	if err != nil {
		return "", "", err
	}
	var out, errb bytes.Buffer
	opts := remotecommand.StreamOptions{Stdout: &out, Stderr: &errb}
	if stdin != "" {
		opts.Stdin = strings.NewReader(stdin)
	}
	err = harness.Stream(ctx, resp.Url, opts)
	return out.String(), errb.String(), err
}

func TestExecStreams(t *testing.T) {
	p := startHostPod(t, nil, "sleep", "3600")
	c, id := p.c, p.id
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The raw client's connection opens on first use: before the count.
	if _, err := c.RawRt.Version(ctx, &criapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	before := daemonInventory(t, p.d)
	out, errs, err := execStream(ctx, c, id, "piped through cat\n", "sh", "-c", "cat; echo to-stderr >&2; exit 3")
	var exit interface{ ExitStatus() int }
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 {
		t.Fatalf("exit: %v (%T), want code 3", err, err)
	}
	if out != "piped through cat\n" || errs != "to-stderr\n" {
		t.Fatalf("stdout %q stderr %q", out, errs)
	}
	// Many sessions at once.
	var wg sync.WaitGroup
	errc := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			out, _, err := execStream(ctx, c, id, "", "echo", fmt.Sprint(i))
			if err == nil && out != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("session %d got %q", i, out)
			}
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Error(err)
		}
	}
	// Bad input: a command that does not exist.
	if _, _, err := execStream(ctx, c, id, "", "no-such-command"); err == nil || !strings.Contains(err.Error(), "no-such-command") {
		t.Errorf("missing command: %v", err)
	}
	// Every session, the failed one too, is gone from the daemon.
	expectNoGrowth(t, p.d, before)
}

// daemonInventory counts what a session could leave in the daemon: its
// goroutines by the function they started in, its open fds by kind, its
// child processes (execs are its children until reaped).
func daemonInventory(t *testing.T, d *harness.Daemon) map[string]int {
	t.Helper()
	inv := map[string]int{}
	gs, err := d.Goroutines()
	if err != nil {
		t.Fatal(err)
	}
	for entry, n := range gs {
		if entry != harness.NoFrames {
			inv["goroutine "+entry] += n
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", d.Pid(), fd.Name()))
		kind, _, _ := strings.Cut(target, ":")
		inv["fd "+kind]++
	}
	// A child belongs to the thread that forked it: ask every thread.
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", d.Pid()))
	for _, f := range tasks {
		children, _ := os.ReadFile(f)
		inv["child processes"] += len(strings.Fields(string(children)))
	}
	return inv
}

// expectNoGrowth fails the test if the daemon holds more of anything than
// in before once its sessions have had a few seconds to wind down.
func expectNoGrowth(t *testing.T, d *harness.Daemon, before map[string]int) {
	t.Helper()
	var grown []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		grown = grown[:0]
		for k, n := range daemonInventory(t, d) {
			if n > before[k] {
				grown = append(grown, fmt.Sprintf("%s: %d, was %d", k, n, before[k]))
			}
		}
		if len(grown) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	slices.Sort(grown)
	t.Errorf("the daemon holds more than before the sessions:\n%s", strings.Join(grown, "\n"))
}

// sizeQueue hands the executor one terminal size, then none.
type sizeQueue struct {
	sizes chan remotecommand.TerminalSize
}

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	s, ok := <-q.sizes
	if !ok {
		return nil
	}
	return &s
}

func TestExecTerminal(t *testing.T) {
	c, _, id := hostPod(t, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "sleep 0.5; tty; stty size"},
		Tty: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	q := sizeQueue{sizes: make(chan remotecommand.TerminalSize, 1)}
	q.sizes <- remotecommand.TerminalSize{Width: 100, Height: 30}
	close(q.sizes)
	var out bytes.Buffer
	if err := harness.Stream(ctx, resp.Url, remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: q}); err != nil {
		t.Fatalf("exec with a terminal: %v (output %q)", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(out.String(), "\r", "")), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "/dev/pts/") || lines[1] != "30 100" {
		t.Fatalf("terminal output %q: want a /dev/pts tty of 30 rows and 100 columns", out.String())
	}
}

func TestPortForward(t *testing.T) {
	const port = 18481
	c, podID, _ := hostPod(t, "sh", "-c", fmt.Sprintf("mkdir -p /www && echo forwarded > /www/index.html && exec httpd -f -p %d -h /www", port))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// client-go's forwarder gives up on its first refused connection (as
	// kubectl port-forward does), so it starts only once httpd listens;
	// the pod shares the node's network.
	waitFor(t, func() bool {
		conn, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			_ = conn.Close()
		}
		return err == nil
	}, "httpd to listen")
	local, _ := forward(ctx, t, c, podID, port)
	waitFor(t, func() bool {
		r, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", local))
		if err != nil {
			return false
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return string(b) == "forwarded\n"
	}, "the page through the port forward")
	// Many connections at once, each its own stream pair.
	var wg sync.WaitGroup
	errc := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			r, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", local))
			if err != nil {
				errc <- err
				return
			}
			defer r.Body.Close()
			if b, _ := io.ReadAll(r.Body); string(b) != "forwarded\n" {
				errc <- fmt.Errorf("concurrent GET: %q", b)
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}

	// Nothing listening: the refusal reaches the client on the error
	// stream, which ends its forwarding, instead of a hang. client-go
	// reports the stream's text only to its global error handlers.
	reported := make(chan string, 4)
	saved := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = append(slices.Clone(saved), func(_ context.Context, err error, _ string, _ ...any) {
		select {
		case reported <- err.Error():
		default:
		}
	})
	t.Cleanup(func() { utilruntime.ErrorHandlers = saved })
	local, ended := forward(ctx, t, c, podID, port+1)
	if conn, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", local)); err == nil {
		_, _ = io.ReadAll(conn)
		_ = conn.Close()
	}
	select {
	case err := <-ended:
		if err == nil {
			t.Error("forwarding to a closed port ended without an error")
		}
	case <-time.After(20 * time.Second):
		t.Error("forwarding to a closed port did not end")
	}
	select {
	case msg := <-reported:
		if !strings.Contains(msg, "connection refused") || !strings.Contains(msg, fmt.Sprint(port+1)) {
			t.Errorf("error stream said %q, want the refusal of port %d", msg, port+1)
		}
	default:
		t.Error("nothing came on the error stream")
	}
}

// forward starts a kubectl-port-forward-like forwarder to a pod's port and
// returns its local port and what its forwarding ends with.
func forward(ctx context.Context, t *testing.T, c harness.Clients, podID string, port int32) (uint16, <-chan error) {
	t.Helper()
	resp, err := c.RawRt.PortForward(ctx, &criapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{port}})
	if err != nil {
		t.Fatal(err)
	}
	local, _, ended := harness.Forward(t, resp.Url, port)
	return local, ended
}

// TestExecClientLeaves: an exec whose client goes away is killed, even when
// it is quiet and reads no stdin.
func TestExecClientLeaves(t *testing.T) {
	c, _, id := hostPod(t, "sleep", "3600")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := c.RawRt.Exec(ctx, &criapi.ExecRequest{ContainerId: id, Cmd: []string{"sleep", "1234"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	sctx, leave := context.WithTimeout(ctx, 500*time.Millisecond)
	defer leave()
	_ = harness.Stream(sctx, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard})
	waitFor(t, func() bool {
		r, err := c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"ps"}, Timeout: 10})
		return err == nil && !strings.Contains(string(r.Stdout), "sleep 1234")
	}, "the abandoned exec to be killed")
}
