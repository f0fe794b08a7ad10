// Package nodee2e runs the Kubernetes node e2e suite (k8s.io/kubernetes
// test/e2e_node, built by hack/clients.sh) against crib, or against Debian's
// containerd for comparison: the kubelet's own conformance suite for
// container runtimes. See docs/conformance.md.
package nodee2e
