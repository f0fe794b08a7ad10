package cri

import (
	"context"
	"io"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/image"
)

// Containers is what the container RPCs need from runtime.Manager.
type Containers interface {
	Create(ctx context.Context, c runtime.Container, o runtime.CreateOptions) (runtime.State, error)
	// Start runs before (NRI StartContainer) once the process exists.
	Start(ctx context.Context, id string, before ...runtime.BeforeExec) (podID string, err error)
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) (podID string, err error)
	Status(ctx context.Context, id string) (runtime.State, error)
	List(ctx context.Context) ([]runtime.State, error)
	Resolve(idOrPrefix string) (string, error)
	// Record is a container's record, without a call to its shim.
	Record(id string) (runtime.Container, error)
	RootfsPath(id string) string
	InSandbox(sandboxID string) []string
	// Sandbox returns the id of a container's pod.
	Sandbox(id string) (string, error)
	Wait(ctx context.Context, id string) (runtime.State, error)
	UpdateResources(ctx context.Context, id string, r *specs.LinuxResources) error
	Exec(ctx context.Context, st runtime.State, proc *specs.Process, stdin io.Reader, stdout, stderr io.Writer,
		resize <-chan runtime.TermSize) (int, error)
	Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan runtime.TermSize) error
	ReopenLog(ctx context.Context, id string) error
	ExecSync(ctx context.Context, id string, process []byte, timeout time.Duration) (runtime.ExecResult, error)
}

// PodInfo is what container RPCs need to know about their pod, from its
// record: what the pod decided at RunPodSandbox, never the copy of the
// pod's config a CreateContainer request carries.
type PodInfo struct {
	ID    string
	Ready bool
	// Pinned namespace files ("" for the host's), and the pause process's
	// pid namespace when the pod shares one.
	NetNS, IPCNS, UTSNS, PidNS string
	// UserNS is the pod's pinned user namespace ("" for the host's).
	UserNS       string
	CgroupParent string
	// Pod files bind-mounted into every container.
	HostnamePath, HostsPath, ResolvPath, ShmPath string

	// Config is the pod's config as its record keeps it (podConfigOf).
	Config *criapi.PodSandboxConfig
	// SecurityUnrecorded: the pod's record predates Privileged and HostPID
	// (sandbox.Pod.SecurityUnrecorded); they come from the request.
	SecurityUnrecorded bool
}

// Pods looks pods up for the container RPCs.
type Pods interface {
	PodInfo(ctx context.Context, id string) (PodInfo, error)
}

// BlockIOClasses resolve a block I/O class (an NRI plugin's) to the
// spec's settings: unknown InvalidArgument, none configured
// FailedPrecondition.
type BlockIOClasses interface {
	Resolve(class string) (*specs.LinuxBlockIO, error)
}

// Classes resolves a container's RDT class from the pod's and the
// container's annotations.
type Classes interface {
	Resolve(podAnnotations, containerAnnotations map[string]string, containerName string) (class string, warning, err error)
	// Check resolves a class named directly (an NRI adjustment) as strictly.
	Check(class string) (resolved string, warning, err error)
}

func toCRIState(s runtime.Status) criapi.ContainerState {
	switch s {
	case runtime.StatusCreated:
		return criapi.ContainerState_CONTAINER_CREATED
	case runtime.StatusRunning:
		return criapi.ContainerState_CONTAINER_RUNNING
	case runtime.StatusExited:
		return criapi.ContainerState_CONTAINER_EXITED
	}
	return criapi.ContainerState_CONTAINER_UNKNOWN
}

func toCRIContainer(st runtime.State) *criapi.Container {
	return &criapi.Container{
		Id:           st.ID,
		PodSandboxId: st.SandboxID,
		Metadata:     &criapi.ContainerMetadata{Name: st.Name, Attempt: st.Attempt},
		Image:        &criapi.ImageSpec{Image: st.Image},
		ImageRef:     imageRef(st),
		ImageId:      st.ImageRef,
		State:        toCRIState(st.Status),
		CreatedAt:    st.CreatedAt.UnixNano(),
		Labels:       st.Labels,
		Annotations:  st.Annotations,
	}
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// imageRef is CRI's image_ref: the image by digest (repo@sha256:…), as
// containerd and CRI-O report it and the kubelet shows as a container's
// imageID; image_id carries the image's own ID. Records made before crib
// kept the digest give the ID for both.
func imageRef(st runtime.State) string {
	if st.RepoDigest != "" {
		return st.RepoDigest
	}
	return st.ImageRef
}

// repoDigest is the name by digest of img in the repository the container
// asked for it from (an image pulled from two repositories has a digest in
// each), else its first, else its ID when it was never pulled by a name.
func repoDigest(img image.Image, asked string) string {
	if ref, err := image.ParseReference(asked); err == nil {
		for _, d := range img.RepoDigests {
			if strings.HasPrefix(d, ref.Repository()+"@") {
				return d
			}
		}
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// shownImage is the image a container's status names: the one the pod's
// spec names when the kubelet passes it (user_specified_image; it creates
// containers from image IDs), else the image asked for unless that is an
// ID, else the image's first tag (containerd's choice). The kubelet shows
// it as the container's image, and the pod e2e specs compare it with the
// spec's.
func shownImage(img image.Image, asked *criapi.ImageSpec) string {
	if u := asked.GetUserSpecifiedImage(); u != "" {
		return u
	}
	if a := asked.GetImage(); a != img.ID && a != strings.TrimPrefix(img.ID, "sha256:") || len(img.RepoTags) == 0 {
		return a
	}
	return img.RepoTags[0]
}

// Mount propagation as CRI names it and as the record keeps it (the OCI
// option crib applies, which cri/spec chooses the same way).
var propagations = map[criapi.MountPropagation]string{
	criapi.MountPropagation_PROPAGATION_PRIVATE:           "rprivate",
	criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER: "rslave",
	criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:     "rshared",
}

// toRecordMounts keeps a config's mounts as given, for ContainerStatus.
func toRecordMounts(in []*criapi.Mount) []runtime.Mount {
	var out []runtime.Mount
	for _, m := range in {
		out = append(out, runtime.Mount{
			ContainerPath: m.GetContainerPath(), HostPath: m.GetHostPath(),
			Readonly: m.GetReadonly(), RecursiveReadOnly: m.GetRecursiveReadOnly(), SelinuxRelabel: m.GetSelinuxRelabel(),
			Propagation: propagations[m.GetPropagation()],
			UIDMappings: toOCIIDMappings(m.GetUidMappings()), GIDMappings: toOCIIDMappings(m.GetGidMappings()),
			MountOptions: m.GetMountOptions(), Image: m.GetImage().GetImage(), ImageSubPath: m.GetImageSubPath(),
		})
	}
	return out
}

// toCRIMounts gives back the mounts a container asked for.
func toCRIMounts(in []runtime.Mount) []*criapi.Mount {
	var out []*criapi.Mount
	for _, m := range in {
		cm := &criapi.Mount{
			ContainerPath: m.ContainerPath, HostPath: m.HostPath,
			Readonly: m.Readonly, RecursiveReadOnly: m.RecursiveReadOnly, SelinuxRelabel: m.SelinuxRelabel,
			UidMappings: toCRIIDMappings(m.UIDMappings), GidMappings: toCRIIDMappings(m.GIDMappings),
			MountOptions: m.MountOptions, ImageSubPath: m.ImageSubPath,
		}
		for p, name := range propagations {
			if name == m.Propagation {
				cm.Propagation = p
			}
		}
		if m.Image != "" {
			// image_ref: the image's ID, what PullImage returned and what
			// the kubelet shows as the volume's digest (ImageVolumeWithDigest).
			cm.Image = &criapi.ImageSpec{Image: m.Image, ImageRef: m.ImageRef}
		}
		out = append(out, cm)
	}
	return out
}

func toOCIIDMappings(in []*criapi.IDMapping) []specs.LinuxIDMapping {
	var out []specs.LinuxIDMapping
	for _, m := range in {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}

func toCRIIDMappings(in []specs.LinuxIDMapping) []*criapi.IDMapping {
	var out []*criapi.IDMapping
	for _, m := range in {
		out = append(out, &criapi.IDMapping{ContainerId: m.ContainerID, HostId: m.HostID, Length: m.Size})
	}
	return out
}
