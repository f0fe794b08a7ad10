// Package e2e starts the crib binary on a temporary root, state dir and
// socket, and drives it over the CRI with the kubelet's own client
// (k8s.io/cri-client) and raw gRPC stubs where a status code is checked.
// The tests need root.
package e2e
