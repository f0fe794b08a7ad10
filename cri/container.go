package cri

import (
	"context"
	"io"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// Containers is what the container RPCs need from runtime.Manager.
type Containers interface {
	Create(ctx context.Context, c runtime.Container, o runtime.CreateOptions) (runtime.State, error)
	Start(ctx context.Context, id string) (podID string, err error)
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) (podID string, err error)
	Status(ctx context.Context, id string) (runtime.State, error)
	List(ctx context.Context) ([]runtime.State, error)
	Resolve(idOrPrefix string) (string, error)
	RootfsPath(id string) string
	InSandbox(sandboxID string) []string
	Wait(ctx context.Context, id string) (runtime.State, error)
	UpdateResources(ctx context.Context, id string, r *specs.LinuxResources) error
	Exec(ctx context.Context, st runtime.State, proc *specs.Process, stdin io.Reader, stdout, stderr io.Writer,
		resize <-chan runtime.TermSize) (int, error)
	Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan runtime.TermSize) error
	ReopenLog(ctx context.Context, id string) error
	ExecSync(ctx context.Context, id string, process []byte, timeout time.Duration) (*shimapi.ExecSyncResponse, error)
}

// PodInfo is what container RPCs need to know about their pod.
type PodInfo struct {
	ID    string
	Ready bool
	// Pinned namespace files ("" for the host's), and the pause process's
	// pid namespace when the pod shares one.
	NetNS, IPCNS, UTSNS, PidNS string
	CgroupParent               string
	// Pod files bind-mounted into every container.
	HostnamePath, HostsPath, ResolvPath, ShmPath string
}

// Pods looks pods up for the container RPCs.
type Pods interface {
	PodInfo(ctx context.Context, id string) (PodInfo, error)
}

// Classes resolves a container's RDT class from the pod's and the
// container's annotations.
type Classes interface {
	Resolve(podAnnotations, containerAnnotations map[string]string, containerName string) (class string, warning, err error)
}

func toCRIState(s shimapi.Status) criapi.ContainerState {
	switch s {
	case shimapi.Status_CREATED:
		return criapi.ContainerState_CONTAINER_CREATED
	case shimapi.Status_RUNNING:
		return criapi.ContainerState_CONTAINER_RUNNING
	case shimapi.Status_EXITED:
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
		ImageRef:     st.ImageRef,
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
