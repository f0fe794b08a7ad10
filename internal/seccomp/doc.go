// Package seccomp compiles an OCI runtime-spec seccomp profile into a
// classic BPF program and loads it (seccomp(2), SECCOMP_SET_MODE_FILTER).
// It is pure Go: no libseccomp. The system call table is x86_64's (from
// golang.org/x/sys/unix); other architectures are refused.
//
// It imports only the runtime spec and x/sys. Internal to crib; no API
// compatibility promised.
package seccomp
