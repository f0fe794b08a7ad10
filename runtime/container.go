package runtime

import (
	"encoding/json"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/runtime/shimapi"
)

// recordVersion is the version of container.json this code writes. Open
// also reads version 1 (upgradeV1).
const recordVersion = 2

// Container is the daemon's persisted record of one container. Its live
// state (pid, exit code, times) is the shim's, read through State.
type Container struct {
	Version   int    `json:"version"`
	ID        string `json:"id"`
	SandboxID string `json:"sandboxID"`
	// Name and Attempt are the CRI metadata; (SandboxID, Name, Attempt) is unique.
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Image is the reference as requested, ImageRef the image ID it resolved to.
	Image    string `json:"image"`
	ImageRef string `json:"imageRef"`
	// RepoDigest names the image by digest (repo@sha256:…), what CRI's
	// image_ref reports; "" in version 1 records.
	RepoDigest string `json:"repoDigest,omitempty"`
	LogPath    string `json:"logPath,omitempty"`
	// LogDir is the pod's log directory, which LogPath lies below and the
	// shim opens it beneath; "" in records made before crib kept it.
	LogDir string `json:"logDir,omitempty"`
	// StopSignal is sent first by Stop; SIGKILL follows after the timeout.
	StopSignal int       `json:"stopSignal"`
	CreatedAt  time.Time `json:"createdAt"`
	// Mounts are the mounts the container's config asked for, for
	// ContainerStatus, which reports those and not the ones crib adds (pod
	// files, /dev/shm). Version 1 kept every bind mount of the spec under
	// "mounts" instead.
	Mounts []Mount `json:"requestedMounts,omitempty"`
	// Resources are the limits applied, for ContainerStatus and updates.
	Resources *specs.LinuxResources `json:"resources,omitempty"`
	// Process is the container's process as specified; ExecSync runs its
	// commands with the same identity, environment and capabilities.
	Process *specs.Process `json:"process,omitempty"`
	// Cgroup is the container's cgroup path (the shim owns the directory).
	Cgroup string `json:"cgroup"`
	// RDTClass is the class the container was placed in ("" none).
	RDTClass string `json:"rdtClass,omitempty"`
	// BlockIOClass is the block I/O class whose settings the container's
	// resources carry ("" none).
	BlockIOClass string `json:"blockioClass,omitempty"`
	// CDIDevices are the CDI devices applied to the spec (CRI cdi_devices
	// and cdi.k8s.io/ annotations), fully qualified, for verbose status.
	CDIDevices []string `json:"cdiDevices,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	Stdin      bool     `json:"stdin,omitempty"`
	StdinOnce  bool     `json:"stdinOnce,omitempty"`
	// Spec (the OCI spec, JSON), Layers and DevShm are what Start hands
	// to the pod's shim: until then the container is only this record.
	Spec   json.RawMessage `json:"spec"`
	Layers []string        `json:"layers"`
	DevShm string          `json:"devShm,omitempty"`
	// VolumeLayers are the layer dirs of the images the container mounts
	// as volumes, pinned as Layers are (LayersInUse). Records made before
	// image volumes have none, and an older daemon ignores the field.
	VolumeLayers []string `json:"volumeLayers,omitempty"`
	// PidTarget is the container whose pid namespace this one joins (pid
	// mode TARGET), and PidTargetPid that container's init pid, whose
	// /proc/<pid>/ns/pid the spec names: Start checks it still runs with
	// that pid around the shim's join, so a reused pid cannot hand over
	// another process's namespace.
	PidTarget string `json:"pidTarget,omitempty"`
	// UserNamespace is the pod's pinned user namespace the container joins
	// ("" none), taken from its spec at Create, so that Start prepares
	// idmapped mounts only for these containers without decoding the spec.
	UserNamespace string `json:"userNamespace,omitempty"`
	PidTargetPid  int    `json:"pidTargetPid,omitempty"`
}

// Mount is a mount as the container's config asked for it, kept as given.
type Mount struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	Readonly      bool   `json:"readonly,omitempty"`
	// RecursiveReadOnly makes every submount read-only too.
	RecursiveReadOnly bool `json:"recursiveReadOnly,omitempty"`
	SelinuxRelabel    bool `json:"selinuxRelabel,omitempty"`
	// Propagation is the OCI option applied: "rprivate" (or ""), "rslave"
	// (host to container) or "rshared" (bidirectional).
	Propagation  string                 `json:"propagation,omitempty"`
	UIDMappings  []specs.LinuxIDMapping `json:"uidMappings,omitempty"`
	GIDMappings  []specs.LinuxIDMapping `json:"gidMappings,omitempty"`
	MountOptions []string               `json:"mountOptions,omitempty"`
	// Image and ImageSubPath are an image volume's reference and the path
	// in it mounted.
	Image        string `json:"image,omitempty"`
	ImageSubPath string `json:"imageSubPath,omitempty"`
	// ImageRef is the ID of the image mounted (what PullImage returned),
	// which ContainerStatus reports as the volume's digest.
	ImageRef string `json:"imageRef,omitempty"`
}

// Status is where a container is in its life, as its shim knows it.
type Status uint8

const (
	// StatusUnknown: the shim did not answer; nothing can be told.
	StatusUnknown Status = iota
	StatusCreated
	StatusRunning
	StatusExited
)

// String spells the status as the shim's wire enum does, which is what
// `crictl inspect` has always shown under "state".
func (s Status) String() string {
	switch s {
	case StatusCreated:
		return "CREATED"
	case StatusRunning:
		return "RUNNING"
	case StatusExited:
		return "EXITED"
	}
	return "UNKNOWN"
}

// statusOf converts the shim's wire status.
func statusOf(s shimapi.Status) Status {
	switch s {
	case shimapi.Status_CREATED:
		return StatusCreated
	case shimapi.Status_RUNNING:
		return StatusRunning
	case shimapi.Status_EXITED:
		return StatusExited
	}
	return StatusUnknown
}

// State is a container's record with its live state from the shim.
type State struct {
	Container
	Status     Status
	Pid        int
	ExitCode   int32
	StartedAt  time.Time
	FinishedAt time.Time
	// Reason is Completed, Error, OOMKilled or Unknown once exited.
	Reason  string
	Message string
}

// created is the state of a container its shim has not been handed yet.
func created(c Container) State {
	return State{Container: c, Status: StatusCreated}
}

// unknown is a container whose shim did not answer in time (wedged): its
// state cannot be told, and neither can its exit code.
func unknown(c Container) State {
	return State{Container: c, Status: StatusUnknown, Reason: "Unknown",
		Message: "the pod's shim did not answer in time"}
}

func fromShim(c Container, s *shimapi.ContainerState) State {
	st := State{Container: c}
	if s == nil {
		st.Status, st.Reason = StatusExited, "Unknown"
		st.Message = "the pod's shim is gone (node restarted or shim killed)"
		st.ExitCode = 255
		return st
	}
	st.Status, st.Pid, st.ExitCode = statusOf(s.Status), int(s.Pid), s.ExitCode
	st.StartedAt, st.FinishedAt = unixNano(s.StartedAt), unixNano(s.FinishedAt)
	st.Reason, st.Message = s.Reason, s.Message
	return st
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// CreateOptions is what Create needs beyond the record.
type CreateOptions struct {
	// Spec is the container's OCI spec (from cri/spec). Root.Path is set by
	// Create to the container's rootfs mount point.
	Spec *specs.Spec
	// Layers are the image's overlay lower dirs, top layer first.
	Layers []string
	// DevShm is the pod's /dev/shm, when it has one.
	DevShm string
	// VolumeLayers are the layer dirs of the image volumes' images.
	VolumeLayers []string
}

func marshalSpec(s *specs.Spec) ([]byte, error) { return json.Marshal(s) }

// withResources returns spec (JSON) with the limits of r; its device
// rules, which a CRI update does not carry, stay.
func withResources(spec json.RawMessage, r *specs.LinuxResources) (json.RawMessage, error) {
	var s specs.Spec
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, fmt.Errorf("decode recorded spec: %w", err)
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	merged := *r
	if s.Linux.Resources != nil {
		merged.Devices = s.Linux.Resources.Devices
	}
	s.Linux.Resources = &merged
	return marshalSpec(&s)
}
