// Package faults injects faults into a crib daemon under load and checks
// what it reports afterwards: the daemon killed (-9) at random moments,
// pods' shims killed, a container's init killed during StartContainer, a
// full disk during an image pull and during log writes. `make test` runs
// a few rounds; `make faults` runs the 50 daemon kills
// (CRIB_FAULTS_KILLS). Needs root. Test-only code.
package faults
