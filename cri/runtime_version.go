package cri

import (
	"context"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	runtimeName       = "crib"
	runtimeAPIVersion = "v1"
	// kubeAPIVersion is the deprecated Version.version field; the kubelet ignores it.
	kubeAPIVersion = "0.1.0"
)

// Version returns the runtime name, its version and the CRI API version.
func (s *Server) Version(context.Context, *criapi.VersionRequest) (*criapi.VersionResponse, error) {
	return &criapi.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    s.opts.Version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}
