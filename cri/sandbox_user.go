package cri

import (
	"fmt"
	"math"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkPodUser validates the pod-level user fields. crib applies them to no
// process: the kubelet copies the pod's runAsUser, runAsGroup,
// supplementalGroups, fsGroup and supplementalGroupsPolicy into every
// container's own context, which is what cri/spec reads (containerd, too,
// reads the pod's only for its pause container, and crib's pause runs with
// no capability in an empty read-only root, where its ids open nothing).
// They are still checked, because the CRI says a run_as_group without a
// run_as_user MUST be an error, and a value the kernel cannot take is the
// client's mistake however it is used.
func checkPodUser(sc *criapi.LinuxSandboxSecurityContext) error {
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil {
		return fmt.Errorf("pod run_as_group is set without run_as_user: %w", errdefs.ErrInvalidArgument)
	}
	for _, f := range []struct {
		name string
		v    *criapi.Int64Value
	}{{"run_as_user", sc.GetRunAsUser()}, {"run_as_group", sc.GetRunAsGroup()}} {
		if f.v != nil && !validID(f.v.GetValue()) {
			return fmt.Errorf("pod %s %d out of range: %w", f.name, f.v.GetValue(), errdefs.ErrInvalidArgument)
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		if !validID(g) {
			return fmt.Errorf("pod supplemental group %d out of range: %w", g, errdefs.ErrInvalidArgument)
		}
	}
	if p := sc.GetSupplementalGroupsPolicy(); p != criapi.SupplementalGroupsPolicy_Merge && p != criapi.SupplementalGroupsPolicy_Strict {
		return fmt.Errorf("pod supplemental_groups_policy %d is neither Merge nor Strict: %w", p, errdefs.ErrInvalidArgument)
	}
	return nil
}

// validID reports whether v is a uid or gid setresuid(2) takes as an id:
// not negative, and not (uid_t)-1, which means "leave unchanged".
func validID(v int64) bool {
	return v >= 0 && v < math.MaxUint32
}
