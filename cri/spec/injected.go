package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// injectedMountOptions are the options crib applies to a bind mount that a
// CDI device adds: the CRI mounts' (allowedMountOptions), the bind itself,
// read-only and read-write, recursive read-only, and private propagation.
// Shared or slave propagation would need the rootfs propagation changed
// (criMounts), idmap needs the pod's mappings on the mount: refused.
var injectedMountOptions = append(slices.Clone(allowedMountOptions),
	"bind", "rbind", "ro", "rw", "rro", "private", "rprivate")

// CheckInjected checks the mounts and device nodes that a container's CDI
// devices added to its spec after Container made it, so that crib applies
// them as CRI mounts and devices are applied or refuses them now rather than
// at StartContainer. mounts are those mounts; nodes map each added node's
// container path to the host node it copies. The container did not write
// these (the node's CDI spec files did), so errors wrap
// errdefs.ErrFailedPrecondition, naming the mount or node.
//
// A node is held to what a CRI device is: a path under /dev, and a host
// path that is a device node of the type and numbers the container gets.
// A vendor spec may give type and numbers itself, which the CDI library
// then applies without looking at the host; crib looks. devices are the
// spec's device nodes once the edits were applied.
func CheckInjected(in Input, mounts []specs.Mount, nodes map[string]string, devices []specs.LinuxDevice) error {
	for _, m := range mounts {
		if err := checkInjectedMount(in, m); err != nil {
			return fmt.Errorf("CDI mount %q: %w", m.Destination, err)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(nodes)) {
		if err := checkInjectedNode(in, p, nodes[p], devices); err != nil {
			return fmt.Errorf("CDI device node %q: %w", p, err)
		}
	}
	return nil
}

func checkInjectedNode(in Input, p, host string, devices []specs.LinuxDevice) error {
	if path.Clean(p) != p || !strings.HasPrefix(p, "/dev/") {
		return failedf("path must be a clean path under /dev")
	}
	// Where mknod is not allowed (a pod with a user namespace) the init
	// binds the host's node of the same path; another path would give the
	// container the wrong node, or none.
	if in.UserNS != "" && host != p {
		return failedf("host node %q has another path, which crib cannot make in a pod with a user namespace", host)
	}
	i := slices.IndexFunc(devices, func(d specs.LinuxDevice) bool { return d.Path == p })
	if i < 0 {
		return failedf("not among the spec's device nodes after the edits")
	}
	d := devices[i]
	f, err := stat(in, host)
	if err != nil {
		return failedf("host node: %v", err)
	}
	typ := d.Type
	if typ == "u" { // unbuffered character device
		typ = "c"
	}
	if (f.Type != 'c' && f.Type != 'b') || string(f.Type) != typ || f.Major != d.Major || f.Minor != d.Minor {
		return failedf("host path %q is not the %s %d:%d device the spec gives the container", host, d.Type, d.Major, d.Minor)
	}
	return nil
}

func checkInjectedMount(in Input, m specs.Mount) error {
	if !path.IsAbs(m.Destination) {
		return failedf("container path must be absolute")
	}
	bind := m.Type == "bind"
	for _, o := range m.Options {
		if !slices.Contains(injectedMountOptions, o) {
			return failedf("mount option %q is not supported", o)
		}
		if o == "rro" && !in.RecursiveReadOnly {
			return failedf("mount option \"rro\" needs mount_setattr(2), which this kernel lacks")
		}
		bind = bind || o == "bind" || o == "rbind"
	}
	if !bind {
		return failedf("type %q: only bind mounts are supported", m.Type)
	}
	if !path.IsAbs(m.Source) {
		return failedf("host path %q must be absolute", m.Source)
	}
	if in.Stat == nil {
		return fmt.Errorf("host path %q: no Stat function given", m.Source)
	}
	if _, err := in.Stat(m.Source); errors.Is(err, fs.ErrNotExist) {
		return failedf("host path %q does not exist", m.Source)
	} else if err != nil {
		return fmt.Errorf("host path %q: %w", m.Source, err)
	}
	return nil
}

func failedf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errdefs.ErrFailedPrecondition)
}
