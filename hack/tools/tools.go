//go:build tools

// Package tools pins the real CRI clients crib is tested against: crictl and
// critest from cri-tools, and the kubelet. They are built from these modules
// (hack/clients.sh), never downloaded as release binaries.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
	_ "sigs.k8s.io/cri-tools/cmd/critest"
)
