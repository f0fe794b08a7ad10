package cri

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/internal/cdi"
)

// CDI applies Container Device Interface devices to a container's spec
// (internal/cdi.Injector). A nil CDI refuses every request, as a node
// without spec directories does.
type CDI interface {
	Inject(s *specs.Spec, names []string) (cdi.Injection, error)
}

// applyCDI injects the CDI devices a container asks for (CRI cdi_devices
// and cdi.k8s.io/ annotations) into its spec, made by cri/spec from in, and
// checks that crib can apply what the vendors' edits added. It returns the
// names applied, for the record. As in containerd, the edits come after
// crib's own spec, so a vendor's mount or node replaces crib's at the same
// path, and the device cgroup rules they add follow crib's.
func (s *Server) applyCDI(ctx context.Context, in spec.Input, oci *specs.Spec) ([]string, error) {
	cfg := in.Config
	requested := make([]string, 0, len(cfg.GetCDIDevices()))
	for _, d := range cfg.GetCDIDevices() {
		requested = append(requested, d.GetName())
	}
	names, err := cdi.Requested(cfg.GetAnnotations(), requested)
	if err != nil || len(names) == 0 {
		return nil, wrapCreate(cfg, err)
	}
	applied, err := s.injectCDI(ctx, in, oci, names)
	return applied, wrapCreate(cfg, err)
}

// injectCDI applies the CDI devices names to oci and checks what their
// edits added: the devices a container asked for, or those an NRI plugin
// adds (nri.Resolvers.CDI).
func (s *Server) injectCDI(ctx context.Context, in spec.Input, oci *specs.Spec, names []string) ([]string, error) {
	cfg := in.Config
	var gids []uint32
	if oci.Process != nil {
		gids = slices.Clone(oci.Process.User.AdditionalGids)
	}
	var inj cdi.Injection
	var err error
	if s.cdi == nil {
		_, err = (*cdi.Injector)(nil).Inject(oci, names)
	} else {
		inj, err = s.cdi.Inject(oci, names)
	}
	if inj.Broken != nil {
		klog.FromContext(ctx).Info("CDI spec files failed to load", "containerID", in.ID, "err", inj.Broken)
	}
	if err != nil {
		return nil, err
	}
	// Strict means the groups the request names, and no others.
	if cfg.GetLinux().GetSecurityContext().GetSupplementalGroupsPolicy() == criapi.SupplementalGroupsPolicy_Strict &&
		oci.Process != nil && !slices.Equal(gids, oci.Process.User.AdditionalGids) {
		return nil, fmt.Errorf("CDI devices %s add supplementary groups %v, and the container's supplemental groups policy is Strict: %w",
			strings.Join(inj.Devices, ", "), slices.DeleteFunc(slices.Clone(oci.Process.User.AdditionalGids), func(g uint32) bool { return slices.Contains(gids, g) }),
			errdefs.ErrFailedPrecondition)
	}
	nodes := make(map[string]string, len(inj.Nodes))
	for _, n := range inj.Nodes {
		nodes[n.Path] = n.HostPath
	}
	var devices []specs.LinuxDevice
	if oci.Linux != nil {
		devices = oci.Linux.Devices
	}
	if err := spec.CheckInjected(in, inj.Mounts, nodes, devices); err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(4).Info("Applied CDI devices", "containerID", in.ID, "devices", inj.Devices)
	return inj.Devices, nil
}

func wrapCreate(cfg *criapi.ContainerConfig, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("create container %q: %w", cfg.GetMetadata().GetName(), err)
}
