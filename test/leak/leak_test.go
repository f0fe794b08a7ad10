package leak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
func cycles(t *testing.T) int {
	s := os.Getenv("CRIB_LEAK_CYCLES")
	if s == "" {
		return 10
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("CRIB_LEAK_CYCLES=%q: want a positive number", s)
	}
	return n
}

// world is one daemon in its own network namespace, with busybox pulled.
type world struct {
	e        *harness.Env
	d        *harness.Daemon
	c        harness.Clients
	image    string
	registry string // host:port of the registry in the test's netns
	cgroup   string // the test's cgroup parent, in every hierarchy
	cg       cgroups.Manager
	// cgroupRoots are the mount points of every cgroup hierarchy.
	cgroupRoots []string
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

	pre := w.count(t)
	w.cycle(t, 0)
	// The first cycle's shim exits after RemovePodSandbox returns: wait
	// until the count holds still, or a slow exit on a loaded machine
	// reads as something gone during the cycles.
	before := w.count(t)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		again := w.count(t)
		if diff(withoutHostMounts(before), withoutHostMounts(again)) == "" {
			break
		}
		before = again
	}
	t.Logf("first cycle (not counted) added: %s", diff(pre, before))

	start := time.Now()
	for i := 1; i <= n; i++ {
		w.cycle(t, i)
		if t.Failed() {
			return
		}
	}
	elapsed := time.Since(start)

	// Shims exit and the kernel tears down namespaces after the RPCs
	// return; give that a moment before calling anything a leak.
	var after map[string]map[string]int
	settle := time.Now()
	for {
		after = w.count(t)
		if diff(before, after) == "" || time.Since(settle) > 10*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d cycles in %s (%s per cycle); settled after %s", n, elapsed.Round(time.Millisecond),
		(elapsed / time.Duration(n)).Round(time.Microsecond), time.Since(settle).Round(time.Millisecond))
	for _, k := range sortedKeys(before, after) {
		t.Logf("%-28s before %5d  after %5d", k, total(before[k]), total(after[k]))
	}
	// The host's own mount table changes with whatever else runs on it
	// (other tests' daemons and pods): a difference there is reported, and
	// only what names this test's directory fails it.
	if d := diff(map[string]map[string]int{hostMounts: before[hostMounts]}, map[string]map[string]int{hostMounts: after[hostMounts]}); d != "" {
		t.Logf("the host's mount table changed (not necessarily this test):\n%s", d)
	}
	delete(before, hostMounts)
	delete(after, hostMounts)
	if d := diff(before, after); d != "" {
		t.Errorf("after %d cycles, left behind (+) or gone (-):\n%s", n, d)
	}
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
	for _, root := range w.cgroupRoots {
		if err := os.Remove(filepath.Join(root, pod.Linux.CgroupParent)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Logf("cycle %d: remove the pod's cgroup: %v", i, err)
		}
	}
}

// count takes an inventory: per category, each item and how many times it
// occurs. Items name what they are (a mount point, a cgroup path, a
// process's command line, an fd's target), so a difference says what leaked.
func (w *world) count(t *testing.T) map[string]map[string]int {
	t.Helper()
	inv := map[string]map[string]int{}
	add := func(cat, item string) {
		if inv[cat] == nil {
			inv[cat] = map[string]int{}
		}
		inv[cat][item]++
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	w.cgroupRoots = w.cgroupRoots[:0]
	for _, line := range strings.Split(strings.TrimSpace(string(mountinfo)), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		point, fstype := f[4], f[sep+1]
		add(hostMounts, point+" "+fstype)
		if strings.Contains(line, w.e.Dir) {
			add("mounts (env dir)", point+" "+fstype)
			if fstype == "nsfs" {
				add("namespace pins (nsfs)", point)
			}
		}
		if fstype == "cgroup" || fstype == "cgroup2" {
			w.cgroupRoots = append(w.cgroupRoots, point)
		}
	}
	for _, root := range w.cgroupRoots {
		_ = filepath.WalkDir(filepath.Join(root, w.cgroup), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				add("cgroups (test parent)", p)
			}
			return nil
		})
	}
	w.countProcs(add)
	daemon := w.d.Pid()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", daemon))
	if err != nil {
		t.Fatalf("daemon fds: %v", err)
	}
	socks := sockets(daemon)
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", daemon, fd.Name()))
		if m := inode.FindStringSubmatch(target); m != nil && strings.HasPrefix(target, "socket:") {
			target = "socket: " + socks[m[1]]
			// The image pull's HTTP client keeps its connection to the
			// registry until net/http's idle timeout (90 s) closes it:
			// that is the pull's, before the first count, not the pods'.
			if target == "socket: tcp to "+w.registry {
				continue
			}
		}
		add("daemon fds", inode.ReplaceAllString(target, "[]"))
	}
	gs, err := w.d.Goroutines()
	if err != nil {
		t.Fatalf("daemon goroutines: %v", err)
	}
	for entry, n := range gs {
		// The pull's idle connection to the registry, as with its fd;
		// goroutines too new or too old to have a stack; the read-ahead of
		// the debug request being served, there or not by timing (its
		// connection's own goroutine is counted).
		switch entry {
		case "net/http.(*persistConn).readLoop", "net/http.(*persistConn).writeLoop", harness.NoFrames, "net/http.(*connReader).backgroundRead":
			continue
		}
		for range n {
			add("daemon goroutines", entry)
		}
	}
	out, err := exec.Command("ip", "-n", w.e.Netns, "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s link: %v\n%s", w.e.Netns, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			add("links (test netns)", f[1])
		}
	}
	walkFiles(filepath.Join(w.e.Dir, "ipam"), "", func(rel string) { add("IPAM files (host-local)", rel) })
	walkFiles(w.e.State, "", func(rel string) { add("state dir entries", rel) })
	walkFiles(w.e.Root, "images", func(rel string) { add("root dir entries", rel) })
	return inv
}

// hexAddr decodes an IPv4 address of /proc/net/tcp ("0100007F:1F90" is
// 127.0.0.1:8080).
func hexAddr(s string) string {
	ip, port, ok := strings.Cut(s, ":")
	a, err1 := strconv.ParseUint(ip, 16, 32)
	p, err2 := strconv.ParseUint(port, 16, 16)
	if !ok || err1 != nil || err2 != nil {
		return s
	}
	return fmt.Sprintf("%d.%d.%d.%d:%d", a&0xff, a>>8&0xff, a>>16&0xff, a>>24, p)
}

// hostMounts is the category of every mount point of the host.
const hostMounts = "mounts (host, total)"

// withoutHostMounts is c without the host's mount table, which changes
// with whatever else runs on the host.
func withoutHostMounts(c map[string]map[string]int) map[string]map[string]int {
	out := maps.Clone(c)
	delete(out, hostMounts)
	return out
}

// inode matches the number in "socket:[1234]", "pipe:[99]".
var inode = regexp.MustCompile(`\[(\d+)\]`)

// sockets describes the sockets in pid's network namespace by inode
// ("unix /path", "tcp", "netlink"), so an fd diff says what kind leaked.
func sockets(pid int) map[string]string {
	out := map[string]string{}
	for _, tab := range []struct {
		file     string
		inodeCol int
		pathCol  int // unix only
	}{{"unix", 6, 7}, {"tcp", 9, -1}, {"tcp6", 9, -1}, {"udp", 9, -1}, {"udp6", 9, -1}, {"netlink", 9, -1}} {
		// The daemon's namespace, then the test's: a unix socket accepted
		// from a client in the host's namespace is listed there.
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, tab.file))
		own, _ := os.ReadFile("/proc/self/net/" + tab.file)
		lines := strings.Split(strings.TrimSpace(string(b))+"\n"+strings.TrimSpace(string(own)), "\n")
		for _, line := range lines[1:] {
			f := strings.Fields(line)
			if len(f) <= tab.inodeCol {
				continue
			}
			desc := tab.file
			if tab.pathCol >= 0 && len(f) > tab.pathCol {
				desc += " " + f[tab.pathCol]
			}
			if tab.file == "tcp" {
				desc += " to " + hexAddr(f[2])
			}
			out[f[tab.inodeCol]] = desc
		}
	}
	return out
}

// countProcs counts the processes this test is responsible for: its own
// children, the daemon's, every process whose command line or executable
// names the env dir (shims, pause processes started from the sealed
// binary) and every process in the test's cgroups (containers). Zombies
// are counted on their own.
func (w *world) countProcs(add func(cat, item string)) {
	entries, _ := os.ReadDir("/proc")
	me, daemon := os.Getpid(), w.d.Pid()
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == me {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		state := f[0]
		ppid, _ := strconv.Atoi(f[1])
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		mine := ppid == me || ppid == daemon || pid == daemon ||
			strings.Contains(cmd, w.e.Dir) || strings.Contains(exe, w.e.Dir) || strings.Contains(string(cg), w.cgroup+"/")
		if !mine {
			continue
		}
		if pid == daemon {
			cmd = "daemon: " + cmd
		}
		add("processes", fmt.Sprintf("%d %s", pid, cmd))
		if state == "Z" {
			add("zombies", fmt.Sprintf("%d (parent %d)", pid, ppid))
		}
	}
}

// walkFiles calls fn with the path, relative to dir, of every entry below
// dir except the top-level entry named skip.
func walkFiles(dir, skip string, fn func(rel string)) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if skip != "" && (rel == skip) {
			return filepath.SkipDir
		}
		fn(rel)
		return nil
	})
}

// diff lists, per category, the items whose counts differ ("" when none).
func diff(a, b map[string]map[string]int) string {
	var out strings.Builder
	for _, cat := range sortedKeys(a, b) {
		for _, item := range sortedKeys(a[cat], b[cat]) {
			if d := b[cat][item] - a[cat][item]; d != 0 {
				fmt.Fprintf(&out, "  %s: %+d %s\n", cat, d, item)
			}
		}
	}
	return out.String()
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sortedKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
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
	shim := shimPid(t, podID)
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

// shimPid finds the shim of a pod by its command line.
func shimPid(t *testing.T, podID string) int {
	t.Helper()
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmd), "\x00")
		if len(args) > 3 && args[1] == "shim" && slices.Contains(args, podID) {
			return pid
		}
	}
	t.Fatalf("no shim for pod %s", podID)
	return 0
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
