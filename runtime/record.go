package runtime

import (
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/statefile"
)

// recordV1Mounts is what version 1 of container.json kept of the mounts:
// every bind mount of the spec, the pod's files among them.
type recordV1Mounts struct {
	Mounts []specs.Mount `json:"mounts"`
}

// readRecord reads a container.json of any version this code knows and
// returns it as the current version. A version 1 record stays version 1 on
// disk until its next write, so an older daemon can still read it.
func readRecord(path string) (Container, error) {
	var c Container
	if err := statefile.ReadJSON(path, &c); err != nil {
		return c, err
	}
	switch c.Version {
	case recordVersion:
		return c, nil
	case 1:
		var v1 recordV1Mounts
		if err := statefile.ReadJSON(path, &v1); err != nil {
			return c, err
		}
		c.Mounts = mountsFromV1(c.SandboxID, v1.Mounts)
		c.Version = recordVersion
		return c, nil
	}
	return c, fmt.Errorf("container %s: version %d: %w", c.ID, c.Version, statefile.ErrVersion)
}

// podFiles are the container paths where crib bind-mounts the pod's files.
var podFiles = []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm"}

// mountsFromV1 recovers the requested mounts from a version 1 record's
// bind mounts. The pod's files are those at a pod file's path whose source
// lies in the pod's directory (named after its id), or the host's /dev/shm
// that a pod on the host's IPC namespace gets; the rest were asked for.
func mountsFromV1(sandboxID string, binds []specs.Mount) []Mount {
	var out []Mount
	for _, b := range binds {
		if slices.Contains(podFiles, b.Destination) &&
			(filepath.Base(filepath.Dir(b.Source)) == sandboxID || b.Source == "/dev/shm" && b.Destination == "/dev/shm") {
			continue
		}
		m := Mount{ContainerPath: b.Destination, HostPath: b.Source, Propagation: "rprivate"}
		for _, o := range b.Options {
			switch o {
			case "ro":
				m.Readonly = true
			case "rslave", "slave":
				m.Propagation = "rslave"
			case "rshared", "shared":
				m.Propagation = "rshared"
			case "rbind", "bind", "rw", "rprivate", "private":
			default:
				m.MountOptions = append(m.MountOptions, o)
			}
		}
		out = append(out, m)
	}
	return out
}
