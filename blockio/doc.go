// Package blockio owns crib's block I/O classes: goresctrl's blockio class
// file (the format containerd and CRI-O read), parsed strictly, its device
// globs resolved to major:minor numbers, and a class name resolved to the
// OCI spec's linux.resources.blockIO. Applying those settings to a cgroup
// is package cgroups' job; choosing a class (an NRI plugin's adjustment) is
// the caller's.
//
// It may import internal/* only; it must not import cri, sandbox, runtime,
// cgroups or rdt. Internal to crib; no API compatibility promised.
package blockio
