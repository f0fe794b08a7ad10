// Package shimapi is the only contract between the crib daemon and a pod's
// shim: the ttrpc service in shim.proto, its generated code, and a small
// client constructor. Regenerate with `make generate`.
//
// It imports nothing from crib but the leaf internal/errcode. Internal to crib; no API compatibility promised.
package shimapi

//go:generate protoc --go_out=paths=source_relative:. --go-ttrpc_out=paths=source_relative:. shim.proto
