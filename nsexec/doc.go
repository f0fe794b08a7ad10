// Package nsexec holds the C constructor that runs in "crib init" before the
// Go runtime starts: it reads the bootstrap message from the init pipe,
// setns(2)s into the pod's namespaces, clone(2)s into new ones and reports the
// child's pid to its parent. For the pause role it also confines the process
// (pause.c: an empty read-only root in a mount namespace of its own, no
// capabilities, no_new_privs, non-dumpable, no fds) before it waits for
// signals, since every container of a pod sharing its pid namespace can look
// at it as pid 1.
//
// It imports nothing from crib; only the container init and the shim import it.
// Internal to crib; no API compatibility promised.
package nsexec
