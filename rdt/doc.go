// Package rdt places pods and containers in Intel RDT / AMD PQoS classes of
// service through resctrl: discovery, goresctrl-format class configuration,
// class resolution from annotations and task placement.
//
// A Controller (Open) finds the resctrl mount in mountinfo, reads info/,
// resolves the class file against the hardware and makes one control group
// per class, named "crib-<class>" so that crib only ever removes groups it
// made; RootClass ("system/default") is the resctrl root. Resolve picks a
// class from annotations, Place writes a pid into it and into the
// container's monitoring group, MonStats reads that group's counters.
// All file access goes through the small fsys interface, so tests run the
// package against a fake that validates writes like the kernel.
//
// It may import internal/* only; it must not import cri, sandbox, runtime or cgroups.
// Internal to crib; no API compatibility promised.
package rdt
