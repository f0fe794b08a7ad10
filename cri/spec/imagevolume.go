package spec

import (
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// imageMount translates a CRI mount of an image (KEP-4639 image volume)
// into the spec mount init makes of it: an overlay of the image's layers
// with no upper dir, read-only by nature. nosuid and nodev as well: the
// image is untrusted content the pod did not build into its own rootfs,
// and a volume has no reason to carry setuid files or device nodes. Not
// noexec: running a binary from an image volume is a purpose of the
// feature (critest checks it). Propagation does not apply: the view has
// no host side to receive mounts from or send them to.
func imageMount(in Input, m *criapi.Mount, dst string) (specs.Mount, error) {
	ref := m.GetImage().GetImage()
	switch {
	case ref == "":
		return specs.Mount{}, invalidf("mount %q: image.image is required for an image volume", dst)
	case m.GetHostPath() != "":
		return specs.Mount{}, invalidf("mount %q: host_path and image are mutually exclusive", dst)
	case !m.GetReadonly():
		// CRI: "All image mounts are per feature definition readonly";
		// the kubelet always sets readonly, so anything else is a client
		// that expects a writable image.
		return specs.Mount{}, invalidf("mount %q: an image volume is read-only: readonly must be set", dst)
	case len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0:
		return specs.Mount{}, invalidf("mount %q: id-mapped image volumes are not supported", dst)
	case podUserns(in) != nil:
		// The init, root only in the pod's user namespace, could not
		// reach the layers (the daemon's directories are 0700).
		return specs.Mount{}, invalidf("mount %q: image volumes in a pod with a user namespace of its own (hostUsers: false) are not supported yet", dst)
	}
	layers := in.ImageVolumes[ref]
	if len(layers) == 0 {
		return specs.Mount{}, invalidf("mount %q: no layers of image %s were given", dst, ref)
	}
	for _, l := range layers {
		if !path.IsAbs(l) || strings.ContainsAny(l, ":,") {
			return specs.Mount{}, invalidf("mount %q: layer dir %q of image %s cannot be passed to overlayfs", dst, l, ref)
		}
	}
	out := specs.Mount{Destination: dst, Type: "overlay", Source: "overlay",
		Options: []string{"ro", "nosuid", "nodev", "lowerdir=" + strings.Join(layers, ":")}}
	if sub := m.GetImageSubPath(); sub != "" {
		// The kubelet's rule for a volume's subPath; init resolves it in
		// the image anyway, so this is for a clear error, not safety.
		if path.IsAbs(sub) || slices.Contains(strings.Split(sub, "/"), "..") {
			return specs.Mount{}, invalidf("mount %q: image_sub_path %q must be relative, without \"..\"", dst, sub)
		}
		out.Options = append(out.Options, initmsg.ImageSubPathOption+sub)
	}
	for _, o := range m.GetMountOptions() {
		if !slices.Contains(allowedMountOptions, o) {
			return specs.Mount{}, invalidf("mount %q: mount option %q is not supported", dst, o)
		}
		out.Options = append(out.Options, o)
	}
	return out, nil
}
