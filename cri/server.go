package cri

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/internal/lsm"
	"github.com/crib-runtime/crib/nri"
	"github.com/crib-runtime/crib/runtime/image"
)

// Images is what the CRI ImageService needs from the image store.
type Images interface {
	Pull(ctx context.Context, ref string, auth image.Auth) (image.Image, error)
	Get(ref string) (image.Image, error)
	List() []image.Image
	Remove(ref string) error
	Usage() image.Usage
	// HoldLayers returns an image's overlay lower dirs and keeps them
	// until release, once the container record that pins them exists.
	HoldLayers(ref string) (dirs []string, release func(), err error)
	// Collect deletes layers kept only for containers since removed.
	Collect()
	RunConfig(ref string) (image.RunConfig, error)
	ConfigFile(ref string) (*v1.ConfigFile, error)
	ReadFile(ref, name string, limit int64) ([]byte, error)
	// CheckDir checks that name is a directory of the image: NotFound
	// when absent, FailedPrecondition when not a directory.
	CheckDir(ref, name string) error
}

// Network reports whether pod networking can be set up; nil means ready.
type Network interface {
	Ready() error
}

// Options are the facts the server reports but does not own.
type Options struct {
	// Version is crib's version string.
	Version string
	// CgroupDriver is "cgroupfs" or "systemd", as configured.
	CgroupDriver string
	// CgroupRoot is the cgroup parent of pods that come without one, and
	// the base of relative parents (cgroups.Paths.Root).
	CgroupRoot string
	// EffectiveConfig is shown by a verbose Status call.
	EffectiveConfig any
	// RDTInfo, when set, returns what a verbose Status shows about RDT:
	// availability, hardware and classes.
	RDTInfo func() any
	// UserNamespaces: the daemon's probe found that pods can have user
	// namespaces of their own (hostUsers: false) here; advertised in
	// Status, and such pods are refused without it.
	UserNamespaces bool
	// RuntimeHandlers are the named handlers besides the default, each an
	// alias of it (config runtime_handlers).
	RuntimeHandlers []string
	// IgnoreSELinux accepts SELinux options without applying them where
	// the host has no SELinux (config lsm.selinux_when_disabled).
	IgnoreSELinux bool
}

// Server implements the CRI RuntimeService and ImageService. RPCs not built
// yet fall through to the generated Unimplemented servers, which answer
// codes.Unimplemented naming the method.
type Server struct {
	criapi.UnimplementedRuntimeServiceServer
	criapi.UnimplementedImageServiceServer

	images     Images
	network    Network
	containers Containers
	pods       Pods
	sandboxes  Sandboxes
	shims      PodShims
	classes    Classes
	blockIO    BlockIOClasses
	cdi        CDI
	opts       Options
	stats      Stats
	metrics    MetricsReader
	cpu        cpuSamples
	events     events
	watchers   watchers
	// base is the daemon's context: container watchers end with it.
	base context.Context
	// streams hands out streaming URLs; set by UseStreams once started.
	streams Streams
	// nofile is this process's hard RLIMIT_NOFILE, what containers get.
	nofile uint64
	// caps is this process's bounding set: what containers can be granted.
	caps []string
	// rro: the kernel has mount_setattr(2), so recursive read-only mounts
	// are advertised and accepted.
	rro bool
	// lsm is what the host's AppArmor and SELinux offer, read at start.
	lsm spec.LSM
	// podLocks orders the RPCs on one pod (pod_guard.go).
	podLocks podLocks
	// nri relays events to NRI plugins; nil when NRI is disabled.
	nri *nri.NRI
	// podCIDRs is the node's pod CIDRs the kubelet last sent
	// (UpdateRuntimeConfig), nil before it sent any.
	podCIDRs atomic.Pointer[string]
}

// Services are what the CRI handlers drive.
type Services struct {
	Images     Images
	Network    Network
	Containers Containers
	Sandboxes  Sandboxes
	Shims      PodShims
	Classes    Classes
	// BlockIO resolves block I/O classes; nil: none configured.
	BlockIO BlockIOClasses
	// CDI resolves CDI device requests; nil refuses them.
	CDI   CDI
	Stats Stats
	// Metrics is nil where the metrics RPCs are not wanted (tests).
	Metrics MetricsReader
	// NRI is nil where NRI is disabled.
	NRI *nri.NRI
}

// NewServer wires the CRI handlers to crib's services. ctx bounds the
// server's background work (event watchers).
func NewServer(ctx context.Context, svc Services, opts Options) *Server {
	s := &Server{images: svc.Images, network: svc.Network, containers: svc.Containers,
		pods: podInfo{svc.Sandboxes}, sandboxes: svc.Sandboxes, shims: svc.Shims, classes: svc.Classes, blockIO: svc.BlockIO, cdi: svc.CDI, stats: svc.Stats, metrics: svc.Metrics, opts: opts, base: ctx, nri: svc.NRI}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		s.nofile = lim.Max
	}
	s.caps = boundingSet()
	s.rro = probeMountSetattr()
	s.lsm = hostLSM(lsm.Host{})
	logger := klog.FromContext(ctx)
	logger.Info("Linux security modules", "apparmor", s.lsm.AppArmor, "selinux", s.lsm.SELinux)
	if !s.lsm.SELinux && opts.IgnoreSELinux {
		s.lsm.IgnoreSELinux = true
		logger.Info("WARNING: SELinux is off on this host and lsm.selinux_when_disabled is \"ignore\": pods' SELinux options are accepted and not applied")
	}
	return s
}

// boundingSet names the capabilities in this process's bounding set, or
// nil (every capability) when /proc cannot tell.
func boundingSet() []string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
				return spec.CapsInMask(mask)
			}
		}
	}
	return nil
}

// cgroupPaths are the cgroup path rules of crib's configured driver.
func (s *Server) cgroupPaths() cgroups.Paths {
	return cgroups.Paths{Driver: s.opts.CgroupDriver, Root: s.opts.CgroupRoot}
}

// UseStreams sets the streaming server that Exec and PortForward answer with.
func (s *Server) UseStreams(st Streams) { s.streams = st }

// Register adds both CRI services to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	criapi.RegisterRuntimeServiceServer(g, s)
	criapi.RegisterImageServiceServer(g, s)
}

// NewGRPCServer returns a gRPC server with crib's interceptors installed;
// they report every call to obs, which may be nil.
func NewGRPCServer(logger klog.Logger, obs RPCObserver) *grpc.Server {
	return grpc.NewServer(
		grpc.ChainUnaryInterceptor(unaryInterceptor(logger, obs)),
		grpc.ChainStreamInterceptor(streamInterceptor(logger, obs)),
		// Image lists of big nodes exceed gRPC's 4 MiB default; the kubelet's
		// client allows 16 MiB.
		grpc.MaxSendMsgSize(16<<20),
		grpc.MaxRecvMsgSize(16<<20),
	)
}

func marshalInfo(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return `{"error":` + jsonString(err.Error()) + `}`
	}
	return string(b)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// hostLSM reads which security modules the host runs. Profiles are looked
// up when a container asks for one: an operator may load them at any time.
func hostLSM(h lsm.Host) spec.LSM {
	l := spec.LSM{AppArmor: h.AppArmorEnabled(), SELinux: h.SELinuxEnabled()}
	if l.AppArmor {
		l.AppArmorLoaded = h.AppArmorLoaded
	}
	return l
}
