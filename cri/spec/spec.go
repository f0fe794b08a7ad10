package spec

import (
	"fmt"
	"os"
	"path"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageConfig is what a container's spec needs from its image. The caller
// fills it from the OCI image config, so no image-library types reach here.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	// User is the image's USER: "name", "uid", "uid:gid", "name:group", …
	User string
	// StopSignal is the image's STOPSIGNAL: "SIGTERM", "TERM", "15", "SIGRTMIN+3".
	StopSignal string
	// Volumes are the image-declared volumes. Ignored for now (kubelet
	// mounts what a pod needs); listed so a later issue can decide.
	Volumes []string
}

// HostFile is what the translation needs to know about a host path named by
// a CRI mount or device.
type HostFile struct {
	IsDir bool
	Mode  os.FileMode
	// Type is 'c' for a character device, 'b' for a block device, 0 otherwise.
	Type         rune
	Major, Minor int64
	UID, GID     uint32
}

// Input is everything a container's spec depends on. Paths are host paths
// the caller (cri/, with sandbox/ and runtime/) has already prepared.
type Input struct {
	ID        string // container ID, 64 hex
	SandboxID string // pod sandbox ID, 64 hex
	Config    *criapi.ContainerConfig
	Sandbox   *criapi.PodSandboxConfig
	Image     ImageConfig
	// ImageName is the image reference for the image-name annotation;
	// Config.Image.Image when empty.
	ImageName string
	// Rootfs is the absolute host path where the rootfs will be mounted.
	Rootfs string

	// NetNS, IPCNS and UTSNS are the pod's pinned namespace files. They are
	// required when the container's mode for them is POD and unused
	// otherwise (NODE means the host's namespace: no entry in the spec).
	NetNS, IPCNS, UTSNS string
	// PidNS is the pause process's /proc/<pid>/ns/pid for POD mode or the
	// target container's for TARGET; unused for CONTAINER (new) and NODE.
	PidNS string
	// UserNS is the pod's pinned user namespace, required when the pod's
	// user namespace mode is POD (hostUsers: false).
	UserNS string

	// CgroupsPath is the container's cgroup (parent + id), cgroupfs form.
	CgroupsPath string

	// Pod files bind-mounted into the container; "" leaves the mount out.
	HostnamePath, HostsPath, ResolvPath, ShmPath string

	// RDTClass is the resolved RDT class, "" for none.
	RDTClass string
	// BlockIOClass is the block I/O class an NRI plugin gave the
	// container, for its record ("" none); its settings are in the
	// spec's linux.resources.blockIO.
	BlockIOClass string
	// PluginCDIDevices are the CDI devices NRI plugins added, for the
	// container's record beside those it asked for (cri/nri.go sets it).
	PluginCDIDevices []string

	// Nofile, when not 0, is RLIMIT_NOFILE's soft and hard value. containerd's
	// CRI plugin drops its default rlimits (containerd/cri#515), so there
	// containers inherit the daemon's start-up limits, soft ones included.
	// crib passes the runtime's own hard limit: raising past it would need
	// CAP_SYS_RESOURCE, and a soft limit set by a service manager's unit
	// should not decide what containers get.
	Nofile uint64

	// Capabilities are those the runtime can grant (its own bounding set,
	// CapsInMask); nil means every capability crib knows.
	Capabilities []string

	// RecursiveReadOnly says the kernel has mount_setattr(2) (Linux 5.12),
	// which the init needs to make a mount read-only with everything under
	// it. Without it a CRI recursive_read_only mount is refused rather than
	// mounted with writable submounts.
	RecursiveReadOnly bool

	// Passwd and Group are the image's /etc/passwd and /etc/group (nil when
	// absent), for resolving user and group names.
	Passwd, Group []byte

	// ImageVolumes are the overlay lower dirs (top layer first) of the
	// images that Config.Mounts mount, by the mount's image.image: cri/
	// looks them up and holds them.
	ImageVolumes map[string][]string

	// Stat describes host paths named by CRI mounts and devices. An error
	// wrapping fs.ErrNotExist means the path does not exist.
	Stat func(path string) (HostFile, error)
	// ReadFile reads a node file: a Localhost seccomp profile. An error
	// wrapping fs.ErrNotExist means the file does not exist.
	ReadFile func(path string) ([]byte, error)
	// HostDevices lists the host's device nodes for privileged containers
	// (containerd's WithHostDevices). nil gives a privileged container only
	// its requested devices, though its device cgroup still allows all.
	HostDevices func() ([]specs.LinuxDevice, error)

	// LSM is what the host's AppArmor and SELinux offer; the zero value
	// refuses every profile and label.
	LSM LSM
}

// CRI annotations set on every container, with containerd's names so that
// tools reading OCI specs (NRI plugins, kata, crictl inspect) find them.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationImageName        = "io.kubernetes.cri.image-name"

	// ContainerTypeContainer is AnnotationContainerType's value for an
	// application container (a pod sandbox would be "sandbox").
	ContainerTypeContainer = "container"
)

// Container returns the OCI runtime spec of a CRI container. Errors wrap
// errdefs.ErrInvalidArgument for bad input, naming the field or path; a
// user or group name the image does not define is bad input too.
func Container(in Input) (*specs.Spec, error) {
	if in.Config == nil {
		return nil, invalidf("container config is missing")
	}
	if in.Sandbox == nil {
		return nil, invalidf("sandbox config is missing")
	}
	if !path.IsAbs(in.Rootfs) {
		return nil, invalidf("rootfs %q must be an absolute path", in.Rootfs)
	}
	sc := in.Config.GetLinux().GetSecurityContext()
	if sc.GetPrivileged() && !in.Sandbox.GetLinux().GetSecurityContext().GetPrivileged() {
		// CRI: "If a privileged container is to be executed within it, this
		// MUST be true" on the sandbox.
		return nil, invalidf("privileged container in a sandbox that is not privileged")
	}
	ns, err := namespaceModes(in)
	if err != nil {
		return nil, err
	}

	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: in.Rootfs, Readonly: sc.GetReadonlyRootfs()},
		Linux:   &specs.Linux{CgroupsPath: in.CgroupsPath},
	}
	if ns.uts == modePod {
		// Setting it again in the pod's namespace is harmless and keeps the
		// spec self-describing; with the host's namespace it would rename
		// the node.
		s.Hostname = in.Sandbox.GetHostname()
	}
	if s.Process, err = process(in); err != nil {
		return nil, err
	}
	if s.Linux.Seccomp, err = seccomp(in, s.Process.Capabilities.Bounding); err != nil {
		return nil, err
	}
	if err := lsm(in, s); err != nil {
		return nil, err
	}
	if s.Mounts, s.Linux.RootfsPropagation, err = mounts(in, ns); err != nil {
		return nil, err
	}
	if s.Linux.Namespaces, err = namespaces(in, ns); err != nil {
		return nil, err
	}
	if ns.user == modePod {
		// The namespace is joined, so nothing writes these: they say which
		// host ids the rootfs and volumes are idmapped to (runtime does it).
		u := in.Sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
		s.Linux.UIDMappings, s.Linux.GIDMappings = idMappings(u.GetUids()), idMappings(u.GetGids())
	}
	if err := linux(in, ns, s.Linux); err != nil {
		return nil, err
	}
	s.Annotations = annotations(in)
	return s, nil
}

// annotations returns the container's own annotations overlaid with the CRI
// ones; the CRI ones win so a pod cannot impersonate another sandbox.
func annotations(in Input) map[string]string {
	a := make(map[string]string, len(in.Config.GetAnnotations())+7)
	for k, v := range in.Config.GetAnnotations() {
		a[k] = v
	}
	image := in.ImageName
	if image == "" {
		image = in.Config.GetImage().GetImage()
	}
	md := in.Sandbox.GetMetadata()
	a[AnnotationContainerType] = ContainerTypeContainer
	a[AnnotationSandboxID] = in.SandboxID
	a[AnnotationSandboxName] = md.GetName()
	a[AnnotationSandboxNamespace] = md.GetNamespace()
	a[AnnotationSandboxUID] = md.GetUid()
	a[AnnotationContainerName] = in.Config.GetMetadata().GetName()
	a[AnnotationImageName] = image
	return a
}

// invalidf returns an error wrapping errdefs.ErrInvalidArgument.
func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}
