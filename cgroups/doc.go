// Package cgroups manages the pod hierarchy and container leaves on cgroup v2
// (first) and v1: paths, resources with explicit units, placement, stats,
// OOM events and teardown.
//
// It may import internal/* only; it must not import cri, sandbox, runtime or rdt.
// Internal to crib; no API compatibility promised.
package cgroups
