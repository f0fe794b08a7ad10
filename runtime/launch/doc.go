// Package launch starts container processes through the setns path: it
// re-executes the crib binary as "crib init" with an init socket, writes the
// nsexec bootstrap message, maps a new user namespace from outside, places
// the final process in its cgroup and RDT class (through a callback) before
// that process runs anything, and then drives the Go container init through
// runtime/initmsg.
//
// The shim and "crib run-oci" use it. It imports nsexec/nsproto and
// runtime/initmsg, and must not import cri, sandbox or runtime/initproc.
// Internal to crib; no API compatibility promised.
package launch
