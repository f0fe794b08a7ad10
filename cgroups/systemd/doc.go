// Package systemd is crib's systemd cgroup driver: the cgroups crib makes
// on a node whose cgroup tree systemd owns become transient units (a scope
// per container and per pod's pause, crib-<id>.scope, in the pod's slice),
// made, updated and stopped through systemd's D-Bus API, while crib keeps
// writing the cgroup files itself, as runc's systemd manager does. Names
// and paths are cgroups' (cgroups.Paths, cgroups.ScopeOf).
//
// Only the daemon imports it: the shim, which every pod pays for, links no
// D-Bus.
//
// Internal to crib; no API compatibility promised.
package systemd
