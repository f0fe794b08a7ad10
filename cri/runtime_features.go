package cri

import criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

// runtimeFeatures is what Status advertises for the runtime as a whole, as
// opposed to per handler.
//
// SupplementalGroupsPolicy (KEP-3619): the kubelet copies it into the
// node's status.features, and refuses to admit a pod asking for Strict on
// a node without it; it says the runtime honours the policy and reports
// ContainerStatus.user, which the kubelet shows as the pod's
// status.containerStatuses[].user. cri/spec resolves both policies against
// the image's /etc/group, and ContainerStatus reports the ids the init set.
//
// UserNamespacesHostNetwork and MountOptions stay false: crib has no user
// namespaces and does not read the CRI mount options yet.
func runtimeFeatures() *criapi.RuntimeFeatures {
	return &criapi.RuntimeFeatures{SupplementalGroupsPolicy: true}
}
