// Package nsexec holds the C constructor that runs in "crib init" before the
// Go runtime starts: it reads the bootstrap message from the init pipe,
// setns(2)s into the pod's namespaces, clone(2)s into new ones and reports the
// child's pid to its parent.
//
// It imports nothing from crib; only the container init and the shim import it.
// Internal to crib; no API compatibility promised.
package nsexec
