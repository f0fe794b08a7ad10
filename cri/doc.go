// Package cri serves the Kubernetes CRI v1 API (RuntimeService and ImageService)
// for crib over gRPC.
//
// It owns request validation, the conversion between CRI messages and crib's
// own records, and the one mapping of domain errors to gRPC codes (errors.go).
// CRI types do not travel past this package. It may import sandbox, runtime,
// runtime/image and internal/*; nothing in crib may import it but cmd/crib.
// Internal to crib; no API compatibility promised.
package cri
