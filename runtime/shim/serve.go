package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/internal/listener"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Config is what a shim serves.
type Config struct {
	// PodID names the pod, for logs and errors.
	PodID string
	// Dir is the shim's state directory: socket, container records, log.
	Dir string
	// Mountinfo is normally /proc/self/mountinfo.
	Mountinfo string
}

// Run is the shim process: it becomes the child subreaper, loads what a
// previous shim of the pod recorded, and serves the daemon on
// Dir/shim.sock until Shutdown, SIGTERM or SIGINT.
func Run(ctx context.Context, cfg Config) (retErr error) {
	logger := klog.FromContext(ctx).WithValues("podSandboxID", cfg.PodID)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "containers"), 0o700); err != nil {
		return fmt.Errorf("shim state dir: %w", err)
	}
	l, err := listener.Listen(filepath.Join(cfg.Dir, shimapi.SocketName), 0o600)
	if err != nil {
		return err
	}
	defer l.Close()
	s, cleanup, err := newService(cfg, logger)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, cleanup()) }()
	attach, err := s.serveAttach(cfg.Dir)
	if err != nil {
		return err
	}
	defer attach.Close()
	srv, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(s.intercept))
	if err != nil {
		return err
	}
	shimapi.RegisterShimService(srv, s)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	ready()
	logger.V(2).Info("Serving shim", "socket", l.Addr().String(), "pid", os.Getpid())

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	defer signal.Stop(sigs)
	select {
	case <-s.shutdown:
		logger.V(2).Info("Shim shutting down")
	case sig := <-sigs:
		logger.V(2).Info("Shim stopping on signal; containers keep running", "signal", sig.String())
	case err := <-served:
		return fmt.Errorf("serve shim: %w", err)
	case <-ctx.Done():
	}
	// Shutdown waits until the connection that asked for it is idle: the
	// reply has gone out.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	return nil
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

// newService opens the host's cgroups and resctrl, finds (or seals) the
// crib binary and loads the pod's records.
func newService(cfg Config, logger klog.Logger) (_ *service, cleanup func() error, retErr error) {
	host, err := cgroups.Detect(cfg.Mountinfo)
	if err != nil {
		return nil, nil, err
	}
	cg, err := manager.New(host, manager.Options{Skipped: func(sk cgroups.Skipped) {
		// Once per controller and shim: every container of the pod
		// is asked for the same (the kubelet's hugetlb limits).
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
	s := &service{podID: cfg.PodID, dir: cfg.Dir, cg: cg, host: host, logger: logger,
		shutdown: make(chan struct{}), containers: map[string]*container{}, reserved: map[string]bool{}}
	if rc, err := openResctrl(cfg.Mountinfo); err != nil {
		return nil, nil, err
	} else if rc != nil {
		s.classes = rc
	}
	var sealedHere bool
	if s.binary, sealedHere, err = sealedSelf(filepath.Join(cfg.Dir, "bin")); err != nil {
		return nil, nil, err
	}
	if sealedHere {
		cleanups = append(cleanups, func() error { return launch.UnsealBinary(filepath.Join(cfg.Dir, "bin")) })
	}
	if err := s.load(); err != nil {
		return nil, nil, err
	}
	s.reaper = newReaper()
	return s, cleanup, nil
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
// failures.
func (s *service) intercept(ctx context.Context, u ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, m ttrpc.Method) (any, error) {
	start := time.Now()
	resp, err := m(ctx, u)
	if err != nil {
		s.logger.V(2).Info("Shim call failed", "rpc", info.FullMethod, "err", err.Error(), "duration", time.Since(start))
	} else {
		s.logger.V(4).Info("Shim call", "rpc", info.FullMethod, "duration", time.Since(start))
	}
	return resp, shimapi.ToStatus(err)
}
