package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Execer starts processes in running containers for streaming sessions
// (kubectl exec): through the setns path, from the daemon, with the
// session's streams as stdio. Place puts a pid in a container's cgroup and
// RDT class before it runs.
type Execer struct {
	Binary string
	// Placement opens the container's cgroup for the process to be born in.
	Placement func(cgroup string) (*cgroups.Placement, error)
	// Place puts the process in the container's RDT class.
	Place func(rdtClass, containerID string, pid int) error
}

// execNamespaces are joined, in this order of kinds, by an fd on the
// container init's /proc/<pid>/ns files, opened while the init is known to
// be alive, so a recycled pid cannot redirect them.
var execNamespaces = []struct {
	name string
	flag uint32
}{
	{"user", unix.CLONE_NEWUSER}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"cgroup", unix.CLONE_NEWCGROUP},
	{"mnt", unix.CLONE_NEWNS},
}

// TermSize is a terminal's size in characters.
type TermSize struct{ Width, Height uint16 }

// UseExecer sets how Exec starts processes (the daemon's wiring).
func (m *Manager) UseExecer(x Execer) { m.execer = x }

// Exec runs proc in the running container st (as Status just returned it,
// so a session reads the container's state once) with the given streams (nil
// stdin: none) and returns its exit code once it ends. With proc.Terminal,
// the process gets a pty from the container's devpts: stdin and stdout
// stream through its master (stderr is unused) and resize sets its size.
// Cancelling ctx kills it.
func (m *Manager) Exec(ctx context.Context, st State, proc *specs.Process,
	stdin io.Reader, stdout, stderr io.Writer, resize <-chan TermSize) (int, error) {
	id := st.ID
	x := m.execer
	if x.Binary == "" {
		return 0, fmt.Errorf("exec in container %s: no execer configured: %w", id, errdefs.ErrNotImplemented)
	}
	if st.Status != shimapi.Status_RUNNING || st.Pid <= 0 {
		return 0, fmt.Errorf("exec in container %s: it is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	join, closeNS, err := containerNamespaces(st.Pid)
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer closeNS()
	if proc.Terminal {
		stderr = nil // one stream: the terminal
	}
	stdout, stderr, probe := sessionOutputs(stdout, stderr)
	var pipeIn io.Reader = stdin
	var pipeOut io.Writer = stdout
	if proc.Terminal {
		pipeIn, pipeOut = nil, nil
	}
	pipes, err := newExecIO(pipeIn, pipeOut, stderr)
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer pipes.close()
	pl, err := x.Placement(st.Cgroup)
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer pl.Close()
	// The container's own filter, from its stored spec: an exec'd process
	// is confined as the container's init is.
	var spec struct {
		Linux *struct {
			Seccomp *specs.LinuxSeccomp `json:"seccomp"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(st.Spec, &spec); len(st.Spec) > 0 && err != nil {
		return 0, fmt.Errorf("exec in container %s: read its spec: %w", id, err)
	}
	execLinux := &specs.Linux{}
	if spec.Linux != nil {
		execLinux.Seccomp = spec.Linux.Seccomp
	}
	p, err := launch.Start(ctx, launch.Options{
		Binary: x.Binary, Role: nsproto.RoleExec, Join: join, Cgroup: pl,
		Place:  func(pid int) error { return x.Place(st.RDTClass, id, pid) },
		Config: &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleExec, Spec: &specs.Spec{Process: proc, Linux: execLinux}},
		Stdin:  pipes.childIn, Stdout: pipes.childOut, Stderr: pipes.childErr,
	})
	pipes.closeChildEnds()
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = p.Signal(syscall.SIGKILL) })
	defer stop()
	defer watchClient(probe, func() { _ = p.Signal(syscall.SIGKILL) })()
	if p.Console != nil {
		pipes.attachConsole(p.Console, stdin, stdout, resize)
	}
	if err := p.Exec(); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait()
		return 0, fmt.Errorf("exec in container %s: %w", id, err)
	}
	ps, err := p.Wait()
	pipes.wait()
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: wait: %w", id, err)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ps.ExitCode(), nil
}

// containerNamespaces opens the namespace files of pid that differ from
// this process's own (joining one's own user namespace is EINVAL).
func containerNamespaces(pid int) ([]launch.Namespace, func(), error) {
	var out []launch.Namespace
	closeAll := func() {
		for _, ns := range out {
			ns.File.Close()
		}
	}
	for _, ns := range execNamespaces {
		var theirs, ours unix.Stat_t
		path := "/proc/" + strconv.Itoa(pid) + "/ns/" + ns.name
		if err := unix.Stat(path, &theirs); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("namespace %s: %w", path, err)
		}
		if unix.Stat("/proc/self/ns/"+ns.name, &ours) == nil && ours.Ino == theirs.Ino && ours.Dev == theirs.Dev {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("namespace %s: %w", path, err)
		}
		out = append(out, launch.Namespace{Type: ns.flag, File: f})
	}
	return out, closeAll, nil
}

// execIO is the pipes between a session's streams and an exec'd process.
type execIO struct {
	childIn, childOut, childErr *os.File
	parents                     []*os.File
	wg                          sync.WaitGroup
}

func newExecIO(stdin io.Reader, stdout, stderr io.Writer) (*execIO, error) {
	x := &execIO{}
	if stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		x.childIn, x.parents = r, append(x.parents, w)
		go func() { _, _ = io.Copy(w, stdin); _ = w.Close() }()
	}
	for _, o := range []struct {
		dst   io.Writer
		child **os.File
	}{{stdout, &x.childOut}, {stderr, &x.childErr}} {
		if o.dst == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			x.close()
			return nil, err
		}
		*o.child, x.parents = w, append(x.parents, r)
		x.wg.Add(1)
		go func(dst io.Writer) { defer x.wg.Done(); _, _ = io.Copy(dst, r) }(o.dst)
	}
	return x, nil
}

// attachConsole streams stdin into a pty master and the master into
// stdout, and applies terminal sizes; the master is closed with the pipes.
func (x *execIO) attachConsole(master *os.File, stdin io.Reader, stdout io.Writer, resize <-chan TermSize) {
	x.parents = append(x.parents, master)
	if stdin != nil {
		go func() { _, _ = io.Copy(master, stdin) }()
	}
	if stdout != nil {
		x.wg.Add(1)
		// Reading the master ends with EIO once every slave fd is closed,
		// i.e. once the process and its children are gone.
		go func() { defer x.wg.Done(); _, _ = io.Copy(stdout, master) }()
	}
	if resize != nil {
		go func() {
			for sz := range resize {
				ws := &unix.Winsize{Row: sz.Height, Col: sz.Width}
				if unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws) != nil {
					return
				}
			}
		}()
	}
}

// closeChildEnds closes this process's copies of the child's pipe ends, so
// the readers see EOF when the child (and whatever it forked) is done.
func (x *execIO) closeChildEnds() {
	for _, f := range []*os.File{x.childIn, x.childOut, x.childErr} {
		if f != nil {
			_ = f.Close()
		}
	}
}

func (x *execIO) wait() { x.wg.Wait() }

func (x *execIO) close() {
	x.closeChildEnds()
	var errs []error
	for _, f := range x.parents {
		errs = append(errs, f.Close())
	}
	_ = errors.Join(errs...)
}
