// Package runtime owns containers on the daemon side: container records and
// their lifecycle through the pod's shim, status, stats, log paths and exit
// codes. Its sub-package image pulls, stores and unpacks images.
//
// It sees only OCI runtime-spec types, never CRI ones, and must not import
// cri, sandbox, cri-api or grpc.
// Internal to crib; no API compatibility promised.
package runtime
