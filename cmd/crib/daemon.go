package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/blockio"
	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/manager"
	"github.com/crib-runtime/crib/cri"
	"github.com/crib-runtime/crib/internal/cdi"
	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/hostfs"
	"github.com/crib-runtime/crib/internal/listener"
	"github.com/crib-runtime/crib/internal/memrelease"
	"github.com/crib-runtime/crib/internal/metrics"
	"github.com/crib-runtime/crib/rdt"
	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/image"
	"github.com/crib-runtime/crib/runtime/launch"
	"github.com/crib-runtime/crib/runtime/shimclient"
	"github.com/crib-runtime/crib/sandbox"
	"github.com/crib-runtime/crib/sandbox/cni"
)

// hostMountinfo is where the daemon and its shims find the host's cgroup
// and resctrl mounts unless told otherwise (-mountinfo).
const hostMountinfo = "/proc/self/mountinfo"

// gracePeriod bounds how long shutdown waits for RPCs in flight.
const gracePeriod = 10 * time.Second

func runDaemon(args []string) int {
	f := newDaemonFlags()
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := f.load()
	if err == nil && f.mountinfo != hostMountinfo {
		// It decides which directories crib writes pids into.
		err = hostfs.RootOnly(f.mountinfo)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crib daemon:", err)
		return 1
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", strconv.Itoa(cfg.LogLevel))
	defer klog.Flush()

	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, f.configPath, f.mountinfo); err != nil {
		klog.ErrorS(err, "Daemon failed")
		return 1
	}
	return 0
}

// serve runs the daemon until ctx ends, then stops gracefully. SIGHUP reloads
// the RDT classes from the config file at configPath. The host's cgroup and
// resctrl mounts are found in mountinfo.
func serve(ctx context.Context, cfg config.Config, configPath, mountinfo string) error {
	logger := klog.Background()
	if cfg.CgroupDriver == config.CgroupDriverSystemd && !systemdRunning() {
		return fmt.Errorf("cgroup_driver is %q but systemd is not running on this host: set cgroup_driver = %q",
			cfg.CgroupDriver, config.CgroupDriverCgroupfs)
	}
	// Before anything is made: a key pair that cannot be read stops the
	// start with nothing to undo.
	streamTLS, err := streamingTLS(cfg.Streaming)
	if err != nil {
		return err
	}
	shimSrc, err := shimBinary()
	if err != nil {
		return err
	}
	if err := makeDirs(cfg); err != nil {
		return err
	}
	rootLock, err := lockDir(cfg.Root)
	if err != nil {
		return err
	}
	defer rootLock.Close()
	streamListener, err := listenStreaming(cfg.Streaming.Address)
	if err != nil {
		return err
	}
	defer streamListener.Close()
	// What a verbose Status shows: the port bound, not the ":0" asked for.
	cfg.Streaming.Address = streamListener.Addr().String()
	metricsListener, err := listenMetrics(cfg.Metrics.Address)
	if err != nil {
		return err
	}
	if metricsListener != nil {
		defer metricsListener.Close()
		cfg.Metrics.Address = metricsListener.Addr().String()
	}
	// Recorded whether or not the endpoint serves them: a few atomic adds
	// per call, and one path for every daemon.
	m := metrics.New()

	classes, err := rdt.Open(mountinfo, rdtConfig(cfg.RDT))
	if err != nil {
		return err
	}
	if info := classes.Info(); info.Available {
		logger.Info("RDT available", "classes", info.Classes, "configFile", info.ConfigFile)
	} else {
		logger.V(2).Info("RDT not available", "reason", info.Reason)
	}
	bio, err := blockio.Open(cfg.BlockIO.ConfigFile)
	if err != nil {
		return err
	}
	if names := bio.Names(); len(names) > 0 {
		logger.Info("Block I/O classes", "classes", names, "configFile", cfg.BlockIO.ConfigFile)
	}
	network := cni.Network{ConfDir: cfg.CNI.ConfDir, BinDirs: cfg.CNI.BinDirs, CacheDir: filepath.Join(cfg.State, "cni"), Observer: m}
	cg, err := manager.Open(mountinfo)
	if err != nil {
		return err
	}
	units, err := openUnits(ctx, logger, cfg, cg)
	if err != nil {
		return err
	}
	if units != nil {
		defer units.Close()
	}
	pods, shims, containers, err := openPods(cfg, network, cg, shimSrc, mountinfo, m)
	if err != nil {
		return err
	}
	useUnits(units, pods, containers)
	// After the container records: they pin the layers of removed images,
	// which the store's first collection must leave.
	images, dropped, err := image.Open(filepath.Join(cfg.Root, "images"), cfg.Registry, cfg.Image, image.NodePlatform(), containers)
	if err != nil {
		return err
	}
	for _, id := range dropped {
		logger.Info("Dropped image with missing content; pull it again", "imageID", id)
	}
	images.UseObserver(m)
	m.CountStates(podStates(pods), containerStates(containers))
	stats := statsReader{cgroups: cg, containers: containers}
	userns := probeUserNamespaces(pods.NsHolder, cfg.Root, cfg.State)
	if userns != nil {
		logger.Info("User namespaces (hostUsers: false) not available", "reason", userns.Error())
	} else {
		logger.V(2).Info("User namespaces (hostUsers: false) available")
	}
	if len(cfg.CDI.SpecDirs) == 0 {
		logger.Info("CDI devices will be refused: cdi.spec_dirs is empty")
	} else {
		logger.V(2).Info("CDI spec directories", "specDirs", cfg.CDI.SpecDirs)
	}
	plugins, err := newNRI(cfg.NRI)
	if err != nil {
		return err
	}
	server := cri.NewServer(ctx, cri.Services{Images: images, Network: network, Classes: classes, BlockIO: bio,
		CDI: cdi.New(cfg.CDI.SpecDirs), Sandboxes: pods, Shims: shims, Containers: containers, Stats: stats, Metrics: stats, NRI: plugins}, cri.Options{
		Version: version, CgroupDriver: cfg.CgroupDriver, CgroupRoot: cfg.CgroupRoot, EffectiveConfig: cfg,
		RDTInfo: func() any { return classes.Info() }, UserNamespaces: userns == nil, RuntimeHandlers: cfg.RuntimeHandlers,
		IgnoreSELinux: cfg.LSM.SELinuxWhenDisabled == "ignore",
	})
	if err := server.WatchRunning(ctx); err != nil {
		return err
	}
	if plugins != nil {
		pods.BeforeReady, pods.AfterUnready = server.NRIRunPod, server.NRIUndoRunPod
		// Before the CRI is served: plugins start from every pod and
		// container there is.
		if err := plugins.Start(server.NRIRuntime()); err != nil {
			return err
		}
		defer plugins.Stop()
		logger.Info("NRI serving", "socket", cfg.NRI.SocketPath, "pluginPath", cfg.NRI.PluginPath)
	}
	if cfg.Debug.Address != "" {
		stop, err := startDebug(logger, cfg.Debug.Address)
		if err != nil {
			return err
		}
		defer stop()
	}
	streams, stopStreams, err := startStreaming(logger, streamListener, streamTLS, server)
	if err != nil {
		return err
	}
	defer stopStreams()
	server.UseStreams(streams)
	// The heap a burst of pod starts grew goes back to the kernel once
	// the burst is over.
	grpcServer := cri.NewGRPCServer(logger, cri.AfterWork(m, memrelease.New(memrelease.DefaultQuiet).Worked))
	server.Register(grpcServer)
	if metricsListener != nil {
		defer startMetrics(logger, metricsListener, m)()
		logger.Info("Serving metrics", "address", cfg.Metrics.Address)
	}

	sockPath, _ := config.SocketPath(cfg.Socket) // validated with the config
	l, err := listener.Listen(sockPath, 0o660)
	if err != nil {
		return err
	}
	defer l.Close()
	logger.Info("Serving CRI", "socket", cfg.Socket, "root", cfg.Root, "state", cfg.State, "version", version)

	errc := make(chan error, 1)
	go func() { errc <- grpcServer.Serve(l) }()
	// Start-up ran code an idle node never runs again: the binary's pages
	// come back as they are used.
	if err := memrelease.DropUnusedCode(); err != nil {
		logger.Info("Binary pages kept", "err", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, unix.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case err := <-errc:
			return fmt.Errorf("serve %s: %w", cfg.Socket, err)
		case <-hup:
			reloadClasses(logger, configPath, classes, bio)
		case <-ctx.Done():
			done = true
		}
	}
	logger.Info("Shutting down")
	done := make(chan struct{})
	go func() { grpcServer.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(gracePeriod):
		grpcServer.Stop()
	}
	containers.Drain()
	logger.Info("Stopped")
	return nil
}

// statsReader gathers what the CRI stats and metrics RPCs report.
type statsReader struct {
	cgroups    manager.Manager
	containers *runtime.Manager
}

func (r statsReader) Cgroup(path string) (*cgroups.Stats, error) { return r.cgroups.Stats(path) }
func (r statsReader) WritableLayer(id string) (uint64, uint64, error) {
	return r.containers.WritableUsage(id)
}
func (r statsReader) StorageDir() string { return r.containers.StorageDir() }
func (r statsReader) Network(netns string) ([]sandbox.InterfaceStats, error) {
	return sandbox.NetworkStats(netns)
}
func (r statsReader) CgroupMetrics(path string) (*cgroups.Metrics, error) {
	return r.cgroups.Metrics(path)
}
func (r statsReader) FDs(pids []int) (uint64, uint64) { return hostfs.CountFDs("/proc", pids) }
func (r statsReader) StorageFS() (hostfs.Filesystem, error) {
	return hostfs.FilesystemOf("/sys", r.containers.StorageDir())
}
func (r statsReader) DeviceName(major, minor uint32) string {
	return hostfs.DeviceName("/sys", major, minor)
}
func (r statsReader) OpenFilesLimit(pid int) (uint64, bool) {
	return hostfs.OpenFilesSoftLimit("/proc", pid)
}

// openPods wires pods and containers: the sealed crib-shim binary the
// shims run from (and their pause processes), the sealed crib-init beside
// it that containers and execs start from, pod records and their shims,
// container records.
func openPods(cfg config.Config, network cni.Network, cg manager.Manager, shimSrc, mountinfo string, obs shimclient.Observer) (*sandbox.Manager, *shimclient.Shims, *runtime.Manager, error) {
	bin, err := launch.SealBinary(shimSrc, filepath.Join(cfg.State, "bin"))
	if err != nil {
		return nil, nil, nil, err
	}
	if err := sealInit(filepath.Dir(shimSrc), filepath.Dir(bin)); err != nil {
		return nil, nil, nil, err
	}
	store, err := sandbox.OpenStore(filepath.Join(cfg.Root, "pods"))
	if err != nil {
		return nil, nil, nil, err
	}
	pods := &sandbox.Manager{Store: store, StateDir: filepath.Join(cfg.State, "pods"),
		Cgroups: sandbox.CgroupsOf(cg), Network: network,
		// /proc/self/exe in the child is still this binary: the holder is
		// the daemon's own code, whatever happens to the file on disk.
		NsHolder: []string{"/proc/self/exe", "userns-hold"}}
	shims := shimclient.New(bin, filepath.Join(cfg.State, "shims"), cfg.Shim.PodsPerShim, obs)
	if mountinfo != hostMountinfo {
		shims.SetMountinfo(mountinfo)
	}
	hookShims(pods, shims)
	if err := pods.Recover(); err != nil {
		return nil, nil, nil, err
	}
	containers, err := runtime.Open(cfg.Root, containerShims{shims})
	if err == nil {
		// In the state dir (0711): the init of a hostUsers: false pod's
		// container, root only in its user namespace, must reach it.
		containers.IDMapDir, containers.PodsDir = filepath.Join(cfg.State, "userns"), pods.StateDir
		containers.Cgroups = cg
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return pods, shims, containers, nil
}

func rdtConfig(c config.RDT) rdt.Config {
	return rdt.Config{ConfigFile: c.ConfigFile, DefaultClass: c.DefaultClass, IgnoreUnavailable: c.IgnoreUnavailable}
}

// reloadClasses re-reads the config file and applies its rdt and blockio
// sections, each on its own: a bad one keeps its classes in use and does
// not hold the other back. Running containers keep their classes. Other
// settings need a restart.
func reloadClasses(logger klog.Logger, path string, classes *rdt.Controller, bio *blockio.Classes) {
	cfg, err := config.Load(path, false)
	if err != nil {
		logger.Error(err, "Class reload failed; keeping the RDT and block I/O classes in use", "config", path)
		return
	}
	if err := classes.Reload(rdtConfig(cfg.RDT)); err != nil {
		logger.Error(err, "RDT reload failed; keeping the classes in use", "config", path)
	} else {
		logger.Info("Reloaded RDT classes", "classes", classes.Classes())
	}
	if err := bio.Reload(cfg.BlockIO.ConfigFile); err != nil {
		logger.Error(err, "Block I/O class reload failed; keeping the classes in use", "config", path, "classFile", cfg.BlockIO.ConfigFile)
	} else {
		logger.Info("Reloaded block I/O classes", "classes", bio.Names(), "classFile", cfg.BlockIO.ConfigFile)
	}
}

// makeDirs creates the daemon's root and state directories, and the
// directories below them that crib owns, with modes that keep other host
// users out. Behind the root are the containers' writable layers: a user
// who could reach one could run a setuid-root file a container wrote (the
// CVE-2021-41091 pattern), or read what containers keep. Behind state/pods
// are each pod's /dev/shm (a 1777 tmpfs: a host user could otherwise share
// memory with the pod's processes), namespace pins and hosts files; behind
// state/shims the shims' sockets and logs. Nothing but root (the daemon,
// the shims, and the containers' init before pivot_root) walks these
// paths; containers see their files through mounts made as root.
//
// The root and state dirs are created 0700 and 0711 (the CRI socket, 0660,
// lives in state, and its group must reach it) but never chmod'ed: they
// are the admin's paths, and a typo there must not change the mode of
// /var/lib. The directories crib owns are narrowed at every start, which
// also closes those an older crib made 0711.
func makeDirs(cfg config.Config) error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{cfg.Root, 0o700}, {cfg.State, 0o711}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(cfg.Root, "containers"), 0o700}, {filepath.Join(cfg.Root, "images"), 0o700}, {filepath.Join(cfg.Root, "pods"), 0o700},
		{filepath.Join(cfg.State, "shims"), 0o700}, {filepath.Join(cfg.State, "pods"), 0o700},
		// 0711: the init of a hostUsers: false pod's container (root only
		// in its user namespace) searches its dir there (runtime's
		// IDMapDir), which is 0710 for that pod's root group only.
		{filepath.Join(cfg.State, "userns"), 0o711},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("restrict %s to %o: %w", d.path, d.mode, err)
		}
	}
	return nil
}

// lockDir holds an flock on dir/crib.lock, so two daemons never share a root
// even when they serve different sockets.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "crib.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("root %s is in use by another crib daemon (lock %s): %w", dir, f.Name(), listener.ErrInUse)
	}
	return f, nil
}

// systemdRunning is sd_booted(3): systemd creates this directory as PID 1.
func systemdRunning() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// sealInit seals crib-init, when it is installed beside crib-shim, beside
// crib-shim's sealed view, where the launcher looks for it. Without it
// containers start from crib-shim's "init" command, which works but costs
// each start and exec about 0.6 ms more (the shim's package initialisers).
func sealInit(srcDir, sealDir string) error {
	src := filepath.Join(srcDir, launch.InitBinaryName)
	if err := unix.Access(src, unix.X_OK); err != nil {
		klog.Background().Info("Containers start from crib-shim: crib-init is not installed beside it (make build)", "path", src, "err", err.Error())
		// A view sealed by an earlier install would still be found.
		stale := filepath.Join(sealDir, launch.InitBinaryName)
		for unix.Unmount(stale, unix.MNT_DETACH) == nil {
		}
		if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", stale, err)
		}
		return nil
	}
	_, err := launch.SealBinary(src, sealDir)
	return err
}

// shimBinary is crib-shim, installed next to the daemon's binary.
func shimBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find crib-shim: %w", err)
	}
	path := filepath.Join(filepath.Dir(exe), "crib-shim")
	if err := unix.Access(path, unix.X_OK); err != nil {
		return "", fmt.Errorf("crib-shim, which every pod runs, is not an executable next to %s (%s: %w): install both binaries (make build)", exe, path, err)
	}
	return path, nil
}
