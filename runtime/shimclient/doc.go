// Package shimclient is the daemon's side of the per-pod shim: it spawns a
// pod's shim (detached, so it outlives the daemon) and its pause process,
// keeps one connection to each shim, drops a connection that ended and
// dials the shim again, reports a shim found gone as NotFound, and shuts a
// shim down with its pod. Everything is keyed by pod ID; sandbox (through
// its AfterSetup and BeforeTeardown hooks) and runtime (runtime.Shims) use
// it through interfaces of their own, wired in cmd/crib.
//
// It imports runtime/shimapi (the wire) and nsexec/nsproto; it must not
// import sandbox, cri or runtime/shim (the shim's own side).
// Internal to crib; no API compatibility promised.
package shimclient
