// Package initproc is the Go half of `crib init`: it runs in the container's
// process after the nsexec constructor has joined and created the
// namespaces, reads an initmsg.Config from the init socket, builds the
// container (rootfs, mounts, devices, pivot_root, masked and read-only
// paths, hostname, sysctls) for role "init", applies the process settings
// (rlimits, user and groups, no_new_privs, capabilities, cwd, environment)
// for roles "init" and "exec", reports Ready, waits for Start and execve(2)s
// the user's process. Every failure reaches the launcher as an initmsg Error
// with the step and the path before the container is reported started.
//
// It runs single-threaded in spirit: Run locks the OS thread, starts no
// goroutine, and every credential it changes is that thread's (the one that
// calls execve).
//
// Before it touches any path it closes every fd it did not open itself, and
// every path the spec names for the process (working directory, command)
// is resolved in the container's root with openat2(RESOLVE_IN_ROOT|
// RESOLVE_NO_MAGICLINKS) and checked with getcwd (see cwd.go).
//
// A seccomp filter (linux.seccomp, compiled by internal/seccomp) is loaded
// last, just before execve, so that the profile judges the user's process
// and not init's own steps (see seccomp.go). Init keeps the launcher's log
// pipe, close-on-exec, for warnings.
//
// It imports only the standard library, x/sys, runtime-spec,
// runtime/initmsg and the leaves internal/resolve, internal/seccomp,
// internal/sysctl and internal/lsm (AppArmor profile and SELinux label for
// the exec, see lsm.go); it
// must not import the daemon side (runtime, cri, sandbox). Internal to crib; no API compatibility promised.
package initproc
