// Package shim is the per-pod shim process (crib-shim shim): the child
// subreaper of a pod's containers that starts them through runtime/launch,
// holds their stdio and writes their CRI log files (runtime/shim/crilog),
// records their exits durably, runs ExecSync, keeps the pod's pause process,
// and serves the daemon over ttrpc (runtime/shimapi) on <dir>/shim.sock.
// The daemon starts one, detached, through runtime/shimclient.
//
// It imports runtime/launch, runtime/initmsg, runtime/shimapi, cgroups,
// rdt and internal/*; it must not import cri, sandbox, runtime or
// runtime/shimclient (the daemon side). Internal to crib; no API
// compatibility promised.
package shim
