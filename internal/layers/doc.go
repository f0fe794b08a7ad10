// Package layers holds no code: its test keeps crib's direction of
// dependency (cri → sandbox, runtime → cgroups, rdt, blockio, nsexec →
// internal; nothing imports cri; the shim knows nothing of the CRI) by
// machine, as docs/architecture.md states it.
//
// Internal to crib; no API compatibility promised.
package layers
