// Package leak checks that pod and container lifecycles leave nothing behind
// (mounts, cgroups, namespace pins, processes, fds, veths, IP leases, state
// files). `make test` runs a few cycles; `make leak` runs the 200
// (CRIB_LEAK_CYCLES). Needs root. Test-only code.
package leak
