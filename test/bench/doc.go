// Package bench holds crib's benchmarks against Debian's containerd + runc,
// run in the same process so the figures compare on the same machine and
// moment. Results go to docs/benchmarks.md; `make bench` runs them.
package bench
