// Package sandbox owns pod sandboxes: pod records, pinned namespaces, hosts,
// resolv.conf and hostname files, the pod's /dev/shm, CNI networking, the pod
// cgroup and RDT class, and the hooks that start and stop the pod's shim.
//
// Built here: Store (one versioned JSON record per pod, filters, id-prefix
// lookup), Manager (the sandbox steps of RunPodSandbox with full rollback,
// and of StopPodSandbox and RemovePodSandbox, idempotent), the pod files and
// shm (files.go). Sub-packages: nsfs pins namespaces without a process; cni
// runs libcni ADD and DEL. Namespaced-sysctl rules come from internal/sysctl,
// shared with cri/spec. The pod's shim and pause process are not started
// here: cmd/crib hooks runtime/shimclient in through Manager.AfterSetup
// and Manager.BeforeTeardown.
//
// It must not import cri, runtime (the package) or cri-api: cri orchestrates
// sandbox and runtime, and shared facts travel between them as plain values
// (cri/ converts a PodSandboxConfig into a Config).
// Internal to crib; no API compatibility promised.
package sandbox
