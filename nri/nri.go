package nri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/internal/hostfs"
	"github.com/crib-runtime/crib/internal/listener"
)

// Config is the [nri] section of crib's config, as plain values.
type Config struct {
	SocketPath, PluginPath, PluginConfigPath string
	// DisableConnections: pre-installed plugins only, no socket.
	DisableConnections                  bool
	RegistrationTimeout, RequestTimeout time.Duration
}

// Runtime is what NRI needs from crib besides the events: the pods and
// containers a plugin is synchronised with, and the resource updates
// plugins ask for unsolicited. cri implements it.
type Runtime interface {
	// List is every pod past its creation and the containers of them.
	List(ctx context.Context) ([]Pod, []Container, error)
	// Resources is a container's current resources; live is false for a
	// container that exited (an update has nothing to act on).
	Resources(ctx context.Context, id string) (r *specs.LinuxResources, live bool, err error)
	// UpdateResources applies r as UpdateContainerResources does, without
	// NRI events.
	UpdateResources(ctx context.Context, id string, r *specs.LinuxResources) error
	// Evict stops a container at once (no grace period) because a plugin
	// asked; a container gone already is not an error.
	Evict(ctx context.Context, id, reason string) error
}

// NRI relays crib's pod and container events to NRI plugins. A nil *NRI
// is NRI disabled: every method does nothing.
type NRI struct {
	cfg Config
	a   *adaptation.Adaptation
	// rt is set by Start, before the adaptation calls sync or update.
	rt Runtime
	// plugins counts the plugins connected: with none, no event is built.
	plugins *pluginCount
	state   delivered
	// seeded: the first synchronisation (Start's) filled state.
	seeded atomic.Bool
	claim  io.Closer
}

var setLogger sync.Once

// New makes crib's NRI adaptation; Start opens it to plugins. The
// timeouts are the library's process-wide settings.
func New(cfg Config, version string) (*NRI, error) {
	setLogger.Do(func() { nrilog.Set(klogBridge{}) })
	adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	n := &NRI{cfg: cfg, plugins: &pluginCount{}}
	opts := []adaptation.Option{
		adaptation.WithPluginPath(cfg.PluginPath), adaptation.WithPluginConfigPath(cfg.PluginConfigPath),
		adaptation.WithSocketPath(cfg.SocketPath), adaptation.WithMetrics(n.plugins),
		adaptation.WithTTRPCOptions([]ttrpc.ClientOpts{ttrpc.WithUnaryClientInterceptor(n.clientInterceptor)},
			[]ttrpc.ServerOpt{ttrpc.WithUnaryServerInterceptor(n.serverInterceptor)}),
	}
	if cfg.DisableConnections {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	}
	a, err := adaptation.New("crib", version, n.sync, n.updateFromPlugins, opts...)
	if err != nil {
		return nil, fmt.Errorf("nri: %w", err)
	}
	n.a = a
	return n, nil
}

// Start launches the pre-installed plugins, synchronises them with rt's
// pods and containers, and listens on the socket, which it refuses to take
// from another process that answers on it (another runtime's NRI). The
// socket is made root's only (0600): a plugin can change any container.
func (n *NRI) Start(rt Runtime) error {
	if n == nil {
		return nil
	}
	n.rt = rt
	if err := trustedPlugins(n.cfg.PluginPath, n.cfg.PluginConfigPath); err != nil {
		return fmt.Errorf("start nri: %w", err)
	}
	if !n.cfg.DisableConnections {
		c, err := listener.Claim(n.cfg.SocketPath)
		if err != nil {
			return fmt.Errorf("nri.socket_path: %w", err)
		}
		n.claim = c
	}
	// The library binds the socket under the process's umask and accepts
	// before the chmod below: bound with group and others' write taken
	// away, nobody but root can connect meanwhile. The plugins it starts
	// inherit that umask (the daemon's own, unless it let others write).
	if err := listener.WithUmask(func(old int) int { return old | 0o022 }, n.a.Start); err != nil {
		n.closeClaim()
		return fmt.Errorf("start nri: %w", err)
	}
	if !n.cfg.DisableConnections {
		if err := os.Chmod(n.cfg.SocketPath, 0o600); err != nil {
			n.a.Stop()
			n.closeClaim()
			return fmt.Errorf("start nri: restrict %s: %w", n.cfg.SocketPath, err)
		}
	}
	return nil
}

// Stop closes the socket and stops the plugins crib launched.
func (n *NRI) Stop() {
	if n == nil {
		return
	}
	n.a.Stop()
	n.closeClaim()
}

func (n *NRI) closeClaim() {
	if n.claim != nil {
		_ = n.claim.Close()
		n.claim = nil
	}
}

// Active reports whether any plugin is connected.
func (n *NRI) Active() bool { return n != nil && n.plugins.n.Load() > 0 }

// BlockSync holds plugin synchronisation off until the returned function
// is called: a pod or container between its event and its record would be
// missing from a plugin's synchronisation and never reach it otherwise.
func (n *NRI) BlockSync() (unblock func()) {
	if n == nil {
		return func() {}
	}
	b := n.a.BlockPluginSync()
	var once sync.Once
	return func() { once.Do(b.Unblock) }
}

// RunPodSandbox tells plugins a pod is about to be ready; an error fails
// the pod.
func (n *NRI) RunPodSandbox(ctx context.Context, p Pod) error {
	if !n.Active() {
		return nil
	}
	return eventErr(ctx, "RunPodSandbox", n.a.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: toAPIPod(p)}))
}

// StopPodSandbox tells plugins a pod stopped (its containers are stopped).
func (n *NRI) StopPodSandbox(ctx context.Context, p Pod) error {
	if !n.Active() {
		return nil
	}
	return eventErr(ctx, "StopPodSandbox", n.a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: toAPIPod(p)}))
}

// RemovePodSandbox tells plugins a pod is gone.
func (n *NRI) RemovePodSandbox(ctx context.Context, p Pod) error {
	if !n.Active() {
		return nil
	}
	return eventErr(ctx, "RemovePodSandbox", n.a.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: toAPIPod(p)}))
}

// UpdatePodSandbox tells plugins a pod's resources change; an error fails
// the update.
func (n *NRI) UpdatePodSandbox(ctx context.Context, p Pod, overhead, resources *specs.LinuxResources) error {
	if !n.Active() {
		return nil
	}
	_, err := n.a.UpdatePodSandbox(ctx, &api.UpdatePodSandboxRequest{Pod: toAPIPod(p),
		OverheadLinuxResources: api.FromOCILinuxResources(overhead, nil), LinuxResources: api.FromOCILinuxResources(resources, nil)})
	return eventErr(ctx, "UpdatePodSandbox", err)
}

// PostUpdatePodSandbox tells plugins a pod's resources changed.
func (n *NRI) PostUpdatePodSandbox(ctx context.Context, p Pod) error {
	if !n.Active() {
		return nil
	}
	return eventErr(ctx, "PostUpdatePodSandbox", n.a.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: toAPIPod(p)}))
}

// PostCreateContainer tells plugins a container was created.
func (n *NRI) PostCreateContainer(ctx context.Context, info Info) error {
	return n.containerEvent(ctx, "PostCreateContainer", info, func(p *api.PodSandbox, c *api.Container) error {
		return n.a.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: p, Container: c})
	})
}

// StartContainer tells plugins a container is about to start; an error
// fails the start.
func (n *NRI) StartContainer(ctx context.Context, id string, info Info) error {
	err := n.containerEvent(ctx, "StartContainer", info, func(p *api.PodSandbox, c *api.Container) error {
		return n.a.StartContainer(ctx, &api.StartContainerRequest{Pod: p, Container: c})
	})
	if err == nil && n != nil {
		n.state.set(id, StatusRunning)
	}
	return err
}

// PostStartContainer tells plugins a container started.
func (n *NRI) PostStartContainer(ctx context.Context, info Info) error {
	return n.containerEvent(ctx, "PostStartContainer", info, func(p *api.PodSandbox, c *api.Container) error {
		return n.a.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: p, Container: c})
	})
}

// PostUpdateContainer tells plugins a container's resources changed.
func (n *NRI) PostUpdateContainer(ctx context.Context, info Info) error {
	return n.containerEvent(ctx, "PostUpdateContainer", info, func(p *api.PodSandbox, c *api.Container) error {
		return n.a.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: p, Container: c})
	})
}

// StopContainer tells plugins a container stopped, once, whether it was
// stopped or exited; the updates of other containers they answer with are
// applied.
func (n *NRI) StopContainer(ctx context.Context, id string, info Info) error {
	if n == nil || !n.state.stop(id) {
		return nil
	}
	return n.stopContainer(ctx, info)
}

func (n *NRI) stopContainer(ctx context.Context, info Info) error {
	var updates []*api.ContainerUpdate
	err := n.containerEvent(ctx, "StopContainer", info, func(p *api.PodSandbox, c *api.Container) error {
		resp, err := n.a.StopContainer(ctx, &api.StopContainerRequest{Pod: p, Container: c})
		updates = resp.GetUpdate()
		return err
	})
	n.applyUpdates(ctx, "StopContainer", updates)
	return err
}

// RemoveContainer tells plugins a container is gone, after a StopContainer
// if it was not stopped for them yet.
func (n *NRI) RemoveContainer(ctx context.Context, id string, info Info) error {
	if n == nil {
		return nil
	}
	stop, remove := n.state.remove(id)
	var errs []error
	if stop {
		errs = append(errs, n.stopContainer(ctx, info))
	}
	if remove {
		errs = append(errs, n.containerEvent(ctx, "RemoveContainer", info, func(p *api.PodSandbox, c *api.Container) error {
			return n.a.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: p, Container: c})
		}))
	}
	return errors.Join(errs...)
}

// containerEvent builds the event's pod and container only when a plugin
// is connected.
func (n *NRI) containerEvent(ctx context.Context, op string, info Info, send func(*api.PodSandbox, *api.Container) error) error {
	if !n.Active() {
		return nil
	}
	p, c, err := info()
	if err != nil {
		return fmt.Errorf("NRI %s: %w", op, err)
	}
	return eventErr(ctx, op, send(toAPIPod(p), toAPIContainer(c)))
}

// eventErr classifies what the adaptation returned: a plugin's refusal is
// FailedPrecondition (the request cannot go ahead in this node's state);
// the caller's own deadline or cancellation stays what it is.
func eventErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("NRI %s: %v: %w", op, err, ctx.Err())
	}
	return fmt.Errorf("NRI %s: %v: %w", op, err, errdefs.ErrFailedPrecondition)
}

// pluginCount implements the adaptation's Metrics for the one figure crib
// uses: how many plugins are connected.
type pluginCount struct{ n atomic.Int32 }

func (c *pluginCount) RecordPluginInvocation(string, string, error)      {}
func (c *pluginCount) RecordPluginLatency(string, string, time.Duration) {}
func (c *pluginCount) UpdatePluginCount(count int)                       { c.n.Store(int32(count)) }
func (c *pluginCount) RecordPluginAdjustments(string, string, *api.ContainerAdjustment, int, int) {
}

// klogBridge sends the library's log to klog: its info lines (plugins
// connecting, synchronising) are state changes, its debug lines steps.
type klogBridge struct{}

func (klogBridge) logger(ctx context.Context) klog.Logger {
	if ctx == nil {
		return klog.Background().WithName("nri")
	}
	return klog.FromContext(ctx).WithName("nri")
}

func (b klogBridge) Debugf(ctx context.Context, format string, args ...any) {
	b.logger(ctx).V(5).Info(fmt.Sprintf(format, args...))
}

func (b klogBridge) Infof(ctx context.Context, format string, args ...any) {
	b.logger(ctx).V(2).Info(fmt.Sprintf(format, args...))
}

func (b klogBridge) Warnf(ctx context.Context, format string, args ...any) {
	b.logger(ctx).Info("WARNING: " + fmt.Sprintf(format, args...))
}

func (b klogBridge) Errorf(ctx context.Context, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, adaptation.ErrWasmDisabled.Error()) {
		// crib is built without NRI's WebAssembly runtime (nri_no_wasm),
		// on purpose: New says so at every start.
		b.logger(ctx).V(2).Info("WebAssembly NRI plugins are not supported by this build")
		return
	}
	b.logger(ctx).Error(nil, msg)
}

// trustedPlugins refuses plugin and config directories, and plugins, that
// someone other than root could write: crib runs the plugins as root, and
// a plugin can do to any container what crib can.
func trustedPlugins(pluginDir, configDir string) error {
	for _, dir := range []string{pluginDir, configDir} {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := hostfs.RootOnly(dir); err != nil {
			return fmt.Errorf("plugin directory %w", err)
		}
		for _, e := range entries {
			if err := hostfs.RootOnly(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("plugin %w", err)
			}
		}
	}
	return nil
}
