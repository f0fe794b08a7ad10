//go:build tools

// Package kindtools pins what `make kind` builds beside the clients of
// hack/tools: kind's CLI and CoreDNS (the cluster DNS kubeadm installs). They
// live in a module of their own so that their dependencies do not move the
// versions the kubelet and the e2e suites are built with.
package kindtools

import (
	_ "github.com/coredns/coredns"
	_ "sigs.k8s.io/kind"
)
