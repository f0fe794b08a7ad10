package shim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/listener"
	"github.com/crib-runtime/crib/internal/memrelease"
	"github.com/crib-runtime/crib/internal/mountinfo"
	"github.com/crib-runtime/crib/runtime/initproc"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Config is what a shim process serves.
type Config struct {
	// Dir is the process's own directory: its Group socket, its sealed
	// binary when it made one. Each pod it serves has a directory of its
	// own (Group.Serve).
	Dir string
	// Mountinfo is normally /proc/self/mountinfo.
	Mountinfo string
}

// Run is the shim process: it becomes the child subreaper and serves the
// daemon on Dir/group.sock, and each pod the daemon hands it (Serve) on
// that pod's socket, until Exit (once it serves no pod), SIGTERM or SIGINT
// (its pods' containers keep running).
func Run(ctx context.Context, cfg Config) (retErr error) {
	logger := klog.FromContext(ctx)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("shim dir: %w", err)
	}
	sock, err := listener.Listen(filepath.Join(cfg.Dir, shimapi.GroupSocketName), 0o600)
	if err != nil {
		return err
	}
	l := track(sock)
	defer l.Close()
	g, cleanup, err := newGroup(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, cleanup()) }()
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(intercept(logger, g.mem)))
	if err != nil {
		return err
	}
	shimapi.RegisterGroupService(srv, g)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	ready()
	logger.V(2).Info("Serving shim", "socket", l.Addr().String(), "pid", os.Getpid())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)
	select {
	case <-g.exit:
		logger.V(2).Info("Shim exiting")
	case sig := <-sigs:
		logger.V(2).Info("Shim stopping on signal; containers keep running", "signal", sig.String())
	case err := <-served:
		retErr = fmt.Errorf("serve shim: %w", err)
	case <-ctx.Done():
	}
	g.releaseAll()
	closeServer(srv, l, 2*time.Second)
	g.closing.Wait()
	return retErr
}

// closeServer stops srv: l takes no more connections at once, and those
// it took end when their clients hang up (the daemon closes its connection
// after the reply to Exit or Shutdown), or after timeout. ttrpc's own
// Shutdown closes connections it believes idle, and a connection whose
// request is being handled can look idle to it: the reply to that very
// request would be lost.
func closeServer(srv *ttrpc.Server, l *trackedListener, timeout time.Duration) {
	_ = l.Close()
	deadline := time.Now().Add(timeout)
	for l.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_ = srv.Close()
}

// trackedListener counts the connections it accepted that are still open.
type trackedListener struct {
	net.Listener
	open atomic.Int32
}

func track(l net.Listener) *trackedListener { return &trackedListener{Listener: l} }

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &trackedConn{Conn: c, l: l}, nil
}

type trackedConn struct {
	net.Conn
	l    *trackedListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// ready tells the process that spawned this shim (shimclient.Spawn) that
// it serves its socket.
func ready() {
	fd, err := strconv.Atoi(os.Getenv(shimapi.EnvReadyFD))
	if err != nil || fd < 3 {
		return
	}
	os.Unsetenv(shimapi.EnvReadyFD)
	f := os.NewFile(uintptr(fd), "shim-ready")
	_, _ = f.Write([]byte{1})
	_ = f.Close()
}

// newGroup opens the host's cgroups and resctrl, finds (or seals) the crib
// binary and starts the reaper: what the process's pods share.
func newGroup(ctx context.Context, cfg Config, logger klog.Logger) (_ *group, cleanup func() error, retErr error) {
	mounts, err := hostMounts(cfg.Mountinfo)
	if err != nil {
		return nil, nil, err
	}
	host, err := cgroups.ParseMountinfo(bytes.NewReader(mounts))
	if err != nil {
		return nil, nil, fmt.Errorf("detect cgroup mode from %s: %w", cfg.Mountinfo, err)
	}
	cg, err := manager.New(host, manager.Options{Skipped: func(sk cgroups.Skipped) {
		// Once per controller and process: every container is asked for
		// the same (the kubelet's hugetlb limits).
		logger.Info("Skipped cgroup limits the host cannot apply; later containers skip them too",
			"controller", sk.Controller, "cgroup", sk.Cgroup, "limits", sk.Files, "reason", sk.Reason)
	}})
	if err != nil {
		return nil, nil, err
	}
	cleanups := []func() error{cg.Close}
	cleanup = func() error {
		var errs []error
		for i := len(cleanups) - 1; i >= 0; i-- {
			errs = append(errs, cleanups[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, cleanup())
		}
	}()
	g := &group{shared: shared{cg: cg, host: host, mem: memrelease.New(memrelease.DefaultQuiet)}, ctx: ctx, dir: cfg.Dir, logger: logger, exit: make(chan struct{}), pods: map[string]*podServer{}}
	if rc, err := openResctrl(bytes.NewReader(mounts)); err != nil {
		return nil, nil, err
	} else if rc != nil {
		g.classes = rc
	}
	var sealedHere bool
	if g.binary, sealedHere, err = sealedSelf(filepath.Join(cfg.Dir, "bin")); err != nil {
		return nil, nil, err
	}
	if sealedHere {
		cleanups = append(cleanups, func() error { return launch.UnsealBinary(filepath.Join(cfg.Dir, "bin")) })
	}
	if host.Mode != cgroups.ModeUnified {
		// Listed once: an init reading mountinfo itself pays for every
		// pod's mounts on the node.
		if g.cgroupMounts, err = initproc.CgroupMountsFrom(bytes.NewReader(mounts)); err != nil {
			return nil, nil, fmt.Errorf("list the host's cgroup mounts: %w", err)
		}
	}
	g.reaper = newReaper()
	return g, cleanup, nil
}

// hostMounts reads the host's mountinfo once for the three parsers of a
// shim's start (cgroup mode, resctrl, the containers' cgroup v1 views),
// keeping the lines they read: on a node full of pods the kernel spends
// about a millisecond formatting the thousands of lines that every pod's
// pinned namespaces and /dev/shm add.
func hostMounts(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the host's mounts: %w", err)
	}
	defer f.Close()
	lines, err := mountinfo.Filter(f, []string{"cgroup", "cgroup2", "resctrl"})
	if err != nil {
		return nil, fmt.Errorf("read the host's mounts from %s: %w", path, err)
	}
	return lines, nil
}

// sealedSelf returns a read-only view of the running binary for containers
// to start from: the binary itself when the daemon started the shim from
// its sealed copy (the normal case: one mount per node), otherwise a seal
// of its own under dir.
func sealedSelf(dir string) (path string, sealedHere bool, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", false, fmt.Errorf("find crib binary: %w", err)
	}
	var fs unix.Statfs_t
	if unix.Statfs(exe, &fs) == nil && fs.Flags&unix.ST_RDONLY != 0 {
		return exe, false, nil
	}
	path, err = launch.SealedBinary(dir)
	return path, err == nil, err
}

// intercept converts errors to statuses once, for every method, and logs
// failures. A handler that panics fails its call with Internal instead of
// ending the process, and with it every pod the process serves.
func intercept(logger klog.Logger, mem *memrelease.Releaser) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, u ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (resp any, err error) {
		start := time.Now()
		if !polls[path.Base(info.FullMethod)] {
			defer mem.Worked()
		}
		defer func() {
			if p := recover(); p != nil {
				logger.Error(nil, "Shim call panicked", "rpc", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "%s: shim panicked: %v", info.FullMethod, p)
			}
		}()
		resp, err = m(ctx, u)
		if err != nil {
			logger.V(2).Info("Shim call failed", "rpc", info.FullMethod, "err", err.Error(), "duration", time.Since(start))
		} else {
			logger.V(4).Info("Shim call", "rpc", info.FullMethod, "duration", time.Since(start))
		}
		return resp, shimapi.ToStatus(err)
	}
}

// polls are the calls that leave the heap as it was and come again and
// again (State for every ContainerStatus, Wait held for a container's
// life): they do not delay returning the heap after a burst.
var polls = map[string]bool{"State": true, "List": true, "Pods": true, "Wait": true}

// podServer is one pod served: its service and the servers of its sockets.
type podServer struct {
	svc    *service
	srv    *ttrpc.Server
	l      *trackedListener
	attach io.Closer
}

// podDrainTimeout bounds how long a pod shut down keeps the connections it
// has (the daemon closes its own at once).
const podDrainTimeout = 10 * time.Second

// close stops serving the pod.
func (p *podServer) close() {
	_ = p.attach.Close()
	closeServer(p.srv, p.l, podDrainTimeout)
}
