package cri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/runtime"
)

// maxUserDBSize bounds how much of an image's /etc/passwd and /etc/group is read.
const maxUserDBSize = 4 << 20

// CreateContainer creates a container in a ready pod: its OCI spec from the
// CRI and image configs, then the runtime's record and the shim's process,
// stopped before execve until StartContainer.
func (s *Server) CreateContainer(ctx context.Context, req *criapi.CreateContainerRequest) (_ *criapi.CreateContainerResponse, retErr error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("create container: config.metadata.name is required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.GetImage().GetImage() == "" {
		return nil, fmt.Errorf("create container %q: config.image is required: %w", cfg.GetMetadata().GetName(), errdefs.ErrInvalidArgument)
	}
	unlock, err := s.usePod(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	defer unlock()
	pod, err := s.pods.PodInfo(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if !pod.Ready {
		return nil, fmt.Errorf("create container in pod %s: the pod is not ready: %w", pod.ID, errdefs.ErrFailedPrecondition)
	}
	img, err := s.images.Get(cfg.GetImage().GetImage())
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("create container: image %s is not present: %w", cfg.GetImage().GetImage(), errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	// Held until the record exists: from then on the record pins them
	// (image.Pins), and a RemoveImage in between must not take them.
	layers, release, err := s.images.HoldLayers(img.ID)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("create container: image %s was removed: %w", cfg.GetImage().GetImage(), errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer release()
	vols, err := s.holdImageVolumes(cfg.GetMounts())
	defer vols.release()
	if err != nil {
		return nil, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	id := runtime.NewID()
	in, err := s.specInput(ctx, id, pod, img.ID, req)
	if err != nil {
		return nil, err
	}
	in.ImageVolumes = vols.lower
	target, err := s.targetOf(ctx, pod.ID, cfg)
	if err != nil {
		return nil, err
	}
	if target != nil {
		in.PidNS = target.nsPath()
	}
	ociSpec, err := spec.Container(in)
	if err != nil {
		return nil, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	if err := s.checkImageSubPaths(cfg.GetMounts(), vols); err != nil {
		return nil, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	cdiDevices, err := s.applyCDI(ctx, in, ociSpec)
	if err != nil {
		return nil, err
	}
	// Held until the record exists (cri/nri.go): NRI plugins adjust the
	// spec, and one synchronised meanwhile would miss the container.
	unblock := s.nri.BlockSync()
	defer unblock()
	if err := s.nriCreate(ctx, req, img, ociSpec, &in, cdiDevices); err != nil {
		return nil, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	defer func() {
		if retErr != nil {
			logNRI(ctx, s.nri.RemoveContainer(context.WithoutCancel(ctx), id, s.nriPending(pod.ID, id, req, img, ociSpec, cdiDevices)), id)
		}
	}()
	rec, err := containerRecord(id, pod, img.ID, req, ociSpec, in)
	if err != nil {
		return nil, err
	}
	rec.RepoDigest = repoDigest(img, cfg.GetImage().GetImage())
	rec.Image = shownImage(img, cfg.GetImage())
	rec.Mounts = withImageRefs(rec.Mounts, vols)
	rec.CDIDevices = cdiDevices
	for _, d := range in.PluginCDIDevices {
		if !slices.Contains(rec.CDIDevices, d) {
			rec.CDIDevices = append(rec.CDIDevices, d)
		}
	}
	if target != nil {
		rec.PidTarget, rec.PidTargetPid = target.id, target.pid
	}
	if _, err := s.containers.Create(ctx, rec, runtime.CreateOptions{Spec: ociSpec, Layers: layers, DevShm: pod.ShmPath,
		VolumeLayers: vols.layers}); err != nil {
		return nil, err
	}
	unblock()
	logNRI(ctx, s.nri.PostCreateContainer(ctx, s.nriInfo(ctx, pod.ID, id, nil)), id)
	klog.FromContext(ctx).V(2).Info("Created container", "containerID", id, "podSandboxID", pod.ID, "name", rec.Name)
	s.emit(ctx, id, pod.ID, criapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &criapi.CreateContainerResponse{ContainerId: id}, nil
}

// specInput gathers everything cri/spec needs: the image's run config and
// user database, the pod's namespaces and files, the RDT class.
func (s *Server) specInput(ctx context.Context, id string, pod PodInfo, imageID string, req *criapi.CreateContainerRequest) (spec.Input, error) {
	cfg := req.GetConfig()
	rc, err := s.images.RunConfig(imageID)
	if err != nil {
		return spec.Input{}, err
	}
	class, warning, err := s.classes.Resolve(pod.Config.GetAnnotations(), cfg.GetAnnotations(), cfg.GetMetadata().GetName())
	if err != nil {
		return spec.Input{}, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	if warning != nil {
		klog.FromContext(ctx).Info("RDT class not applied", "containerID", id, "reason", warning.Error())
	}
	cgroup, err := s.cgroupPaths().Leaf(pod.CgroupParent, id)
	if err != nil {
		return spec.Input{}, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	in := spec.Input{
		ID: id, SandboxID: pod.ID, Config: cfg, Sandbox: sandboxConfig(pod, req.GetSandboxConfig()),
		Image: spec.ImageConfig{Entrypoint: rc.Entrypoint, Cmd: rc.Cmd, Env: rc.Env, WorkingDir: rc.WorkingDir,
			User: rc.User, StopSignal: rc.StopSignal, Volumes: rc.Volumes},
		ImageName: cfg.GetImage().GetImage(),
		NetNS:     pod.NetNS, IPCNS: pod.IPCNS, UTSNS: pod.UTSNS, PidNS: pod.PidNS, UserNS: pod.UserNS,
		CgroupsPath:  cgroup,
		HostnamePath: pod.HostnamePath, HostsPath: pod.HostsPath, ResolvPath: pod.ResolvPath, ShmPath: pod.ShmPath,
		RDTClass:     class,
		Nofile:       s.nofile,
		Capabilities: s.caps,
		LSM:          s.lsm,
		Stat:         statHost,
		ReadFile:     readNodeFile,
		HostDevices:  func() ([]specs.LinuxDevice, error) { return hostDevices("/dev") },
		Rootfs:       s.containers.RootfsPath(id),
	}
	in.RecursiveReadOnly = s.rro
	in.Passwd, _ = s.images.ReadFile(imageID, "/etc/passwd", maxUserDBSize) // absent: numeric users only
	in.Group, _ = s.images.ReadFile(imageID, "/etc/group", maxUserDBSize)
	return in, nil
}

func containerRecord(id string, pod PodInfo, imageID string, req *criapi.CreateContainerRequest, oci *specs.Spec, in spec.Input) (runtime.Container, error) {
	cfg := req.GetConfig()
	stop, err := spec.StopSignal(cfg, in.Image)
	if err != nil {
		return runtime.Container{}, fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
	}
	rec := runtime.Container{
		ID: id, SandboxID: pod.ID, Name: cfg.GetMetadata().GetName(), Attempt: cfg.GetMetadata().GetAttempt(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		Image: cfg.GetImage().GetImage(), ImageRef: imageID, StopSignal: int(stop), CreatedAt: time.Now(),
		Cgroup: in.CgroupsPath, RDTClass: in.RDTClass, BlockIOClass: in.BlockIOClass, Process: oci.Process,
		Tty: cfg.GetTty(), Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(),
	}
	if oci.Linux != nil {
		rec.Resources = oci.Linux.Resources
	}
	rec.Mounts = toRecordMounts(cfg.GetMounts())
	if lp := cfg.GetLogPath(); lp != "" {
		dir := pod.Config.GetLogDirectory()
		if dir == "" {
			return runtime.Container{}, fmt.Errorf("create container %q: log_path %q without the pod's log_directory: %w",
				rec.Name, lp, errdefs.ErrInvalidArgument)
		}
		// CRI: log_path is relative to the pod's log_directory. Lexically
		// inside it here; the shim opens it beneath the directory, so a
		// symlink in the directory cannot lead it out either.
		if filepath.IsAbs(lp) || slices.Contains(strings.Split(lp, "/"), "..") {
			return runtime.Container{}, fmt.Errorf("create container %q: log_path %q must be relative to the log directory, without \"..\": %w",
				rec.Name, lp, errdefs.ErrInvalidArgument)
		}
		rec.LogDir, rec.LogPath = dir, filepath.Join(dir, lp)
	}
	return rec, nil
}

// statHost describes a host path for cri/spec's mount and device checks.
func statHost(path string) (spec.HostFile, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return spec.HostFile{}, fmt.Errorf("stat %s: %w", path, fs.ErrNotExist)
		}
		return spec.HostFile{}, fmt.Errorf("stat %s: %w", path, err)
	}
	hf := spec.HostFile{IsDir: st.Mode&unix.S_IFMT == unix.S_IFDIR, Mode: os.FileMode(st.Mode & 0o7777),
		Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), UID: st.Uid, GID: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		hf.Type = 'c'
	case unix.S_IFBLK:
		hf.Type = 'b'
	}
	return hf, nil
}
