package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/runtime/initmsg"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shim/crilog"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// container is one container of the pod. Its fields before mu never change.
type container struct {
	id      string
	cgroup  string
	class   string // RDT class, "" for none
	file    string // the state file
	oomBase uint64 // the cgroup's OOM kills when it was created
	// oomSeen is set when an OOM kill is heard as it happens (watchOOM):
	// a systemd scope's cgroup is gone before the exit path reads it.
	oomSeen atomic.Bool
	// stopOOM ends that watch; nil when there is none.
	stopOOM func()
	done    chan struct{} // closed once exited and recorded
	// cleaned is closed once the exit path has tried to remove the cgroup.
	cleaned chan struct{}
	// hooks are the container's OCI hooks, nil for none.
	hooks *hookSet
	// seccomp is the container's filter (nil: none), which every exec in
	// it loads too.
	seccomp *specs.LinuxSeccomp
	// execFilter is seccomp compiled for the execs, once (execFilterOnce),
	// or the compile's error: see execSeccomp.
	execFilterOnce sync.Once
	execFilter     *initmsg.SeccompFilter
	execFilterErr  error

	// mu guards the fields below.
	mu     sync.Mutex
	rec    record
	proc   *launch.Process // until Start, nil after
	reaped bool            // the init's pid is no longer ours to signal
	log    *crilog.File    // nil without a log path or once exited
	stdin  *os.File        // the write end, kept for attach; nil without stdin
	// copiers counts the goroutines moving stdout and stderr into the log.
	copiers sync.WaitGroup
	outputs []*os.File // read ends of stdout and stderr
	// console is the pty master of a terminal container (also in outputs).
	console *os.File
	// stdinOnce closes stdin when the first attach session ends.
	stdinOnce bool

	// stdinMu serialises writes to stdin (attach sessions, stdin_once's
	// close): a stdin write's deadline is the file's. Taken before c.mu.
	stdinMu sync.Mutex

	// attachMu guards subs, the attach sessions reading the output.
	attachMu sync.Mutex
	subs     map[*attachSub]shimapi.AttachHeader
}

// persistLocked writes the record, for a shim that restarts: atomically,
// but not durably, since it lives in the state dir, which a reboot (that
// ends the container too) empties. Preconditions: c.mu held.
func (c *container) persistLocked() error {
	return statefile.ReplaceJSON(c.file, &c.rec)
}

// setStatusLocked moves the container to next, refusing transitions the
// table does not allow. Preconditions: c.mu held.
func (c *container) setStatusLocked(next Status) error {
	if !c.rec.Status.canBecome(next) {
		return fmt.Errorf("container %s: %s cannot become %s", c.id, c.rec.Status, next)
	}
	c.rec.Status = next
	return nil
}

// exited reports whether done is closed.
func (c *container) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// startCopiers moves each output read end into its log stream until EOF.
// The goroutines sleep in the netpoller, not on a thread, while idle.
func (c *container) startCopiers() {
	names := []string{crilog.Stdout, crilog.Stderr}
	frames := []byte{shimapi.FrameStdout, shimapi.FrameStderr}
	for i, r := range c.outputs {
		var w io.Writer = io.Discard
		var s *crilog.Stream
		if c.log != nil {
			s = c.log.Stream(names[i])
			w = s
		}
		// Attach sessions see the same bytes as the log.
		w = io.MultiWriter(w, outputTee{c: c, typ: frames[i]})
		c.copiers.Add(1)
		go func() {
			defer c.copiers.Done()
			_ = copyOutput(w, r)
			if s != nil {
				s.Flush()
			}
		}()
	}
}

// drainTimeout bounds how long output is still read after the init exited:
// a process that escaped the container's pid namespace teardown (one
// sharing the pod's, or the host's) may hold the pipes open for ever.
const drainTimeout = 2 * time.Second

// drain waits for the copiers to reach EOF, or cuts them off after
// drainTimeout, then closes the pipes.
func drain(wg *sync.WaitGroup, outputs []*os.File) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		for _, r := range outputs {
			_ = r.SetReadDeadline(time.Now())
		}
		<-done
	}
	for _, r := range outputs {
		_ = r.Close()
	}
}

// closeIOLocked releases the log file and stdin. Preconditions: c.mu held.
func (c *container) closeIOLocked() error {
	var errs []error
	if c.log != nil {
		errs = append(errs, c.log.Close())
		c.log = nil
	}
	if c.stdin != nil {
		errs = append(errs, c.stdin.Close())
		c.stdin = nil
	}
	return errors.Join(errs...)
}

// stateFile is where container id's record lives under the shim's dir.
func stateFile(dir, id string) string {
	return filepath.Join(dir, "containers", id+".json")
}
