package spec

import (
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkRecursiveReadOnly refuses a recursive_read_only mount the CRI does
// not allow or this kernel cannot make. The CRI asks for readonly set too
// and PRIVATE propagation: a mount that receives the host's new mounts
// (rslave, rshared) would get them writable, since mount_setattr only
// covers the mounts present when it runs.
func checkRecursiveReadOnly(in Input, m *criapi.Mount) error {
	dst := m.GetContainerPath()
	switch {
	case !m.GetReadonly():
		return invalidf("mount %q: recursive_read_only needs readonly set too", dst)
	case m.GetPropagation() != criapi.MountPropagation_PROPAGATION_PRIVATE:
		return invalidf("mount %q: recursive_read_only needs PROPAGATION_PRIVATE, not %s", dst, m.GetPropagation())
	case !in.RecursiveReadOnly:
		// The kubelet only asks when Status advertises the feature; a
		// client that asks anyway gets an error rather than a mount whose
		// submounts stay writable.
		return invalidf("mount %q: recursive read-only mounts need mount_setattr(2) (Linux 5.12), which this kernel lacks", dst)
	}
	return nil
}
