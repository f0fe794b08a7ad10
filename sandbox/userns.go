package sandbox

import (
	"math"

	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// validateUserMaps checks a hostUsers: false pod's mappings. crib takes what
// the kubelet sends, one range per kind starting at container id 0 (KEP
// 127: a multiple of 65536 ids from a host range of its own); more than
// one range is refused rather than checked for overlaps, and container
// root must be mapped, or the pod's own processes could not be root in it.
// Host id 0 is refused: the pod's root would be the host's.
func validateUserMaps(c *Config) error {
	um := c.UserMaps
	if um == nil {
		return nil
	}
	if c.HostNetwork || c.HostIPC || c.HostPID {
		return invalidf("pod %s: a user namespace of its own cannot go with the host's network, IPC or pid namespace", c.ID)
	}
	for _, k := range []struct {
		name string
		m    []nsfs.IDMap
	}{{"uid", um.UIDs}, {"gid", um.GIDs}} {
		if len(k.m) != 1 {
			return invalidf("pod %s: user namespace: want exactly one %s mapping, got %d", c.ID, k.name, len(k.m))
		}
		m := k.m[0]
		switch {
		case m.ContainerID != 0:
			return invalidf("pod %s: user namespace: the %s mapping must start at container id 0 (root), not %d", c.ID, k.name, m.ContainerID)
		case m.Length == 0:
			return invalidf("pod %s: user namespace: %s mapping of length 0", c.ID, k.name)
		case m.HostID == 0:
			return invalidf("pod %s: user namespace: %s mapping to host id 0 would make the pod's root the host's", c.ID, k.name)
		case uint64(m.HostID)+uint64(m.Length) > math.MaxUint32:
			return invalidf("pod %s: user namespace: %s mapping %d+%d overflows", c.ID, k.name, m.HostID, m.Length)
		}
	}
	return nil
}
