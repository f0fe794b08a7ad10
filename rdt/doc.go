// Package rdt places pods and containers in Intel RDT / AMD PQoS classes of
// service through resctrl: discovery, goresctrl-format class configuration,
// class resolution from annotations and task placement.
//
// It may import internal/* only; it must not import cri, sandbox, runtime or cgroups.
// Internal to crib; no API compatibility promised.
package rdt
