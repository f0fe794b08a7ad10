// Package sandbox owns pod sandboxes: pod records, pinned namespaces, hosts,
// resolv.conf and hostname files, the pod's /dev/shm, CNI networking, the pod
// cgroup and RDT class, and the pod's shim.
//
// It must not import cri, runtime (the package) or cri-api: cri orchestrates
// sandbox and runtime, and shared facts travel between them as plain values.
// Internal to crib; no API compatibility promised.
package sandbox
