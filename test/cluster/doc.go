// Package cluster holds the e2e tests and the benchmark of the one-node
// Kubernetes cluster on crib that hack/local-cluster.sh runs: kubectl run,
// exec with a terminal, logs -f, port-forward, debug --target, a Deployment
// scaled to 20 and back, a Job and a liveness restart, each against a real
// kube-apiserver, scheduler, controller-manager and kubelet.
//
// The files are behind the "cluster" build tag, so that `make test` stays
// short; `make cluster` runs them (root, a few minutes). Test-only code.
package cluster
