// Package layer unpacks one uncompressed OCI or Docker image layer tar into an
// empty directory that later serves as an overlayfs lower dir, converting OCI
// whiteouts to the overlayfs form on the way.
//
// A layer is untrusted input: every path is resolved by the kernel inside the
// target directory (openat2 with RESOLVE_IN_ROOT) and every change is made
// with the *at system calls relative to a directory fd, so no entry can
// create, write, chown, chmod or link anything outside it.
//
// It imports only the standard library, golang.org/x/sys and klog, and must
// not import cri, sandbox or any registry client: decompression and digest
// verification belong to the caller.
// Internal to crib; no API compatibility promised.
package layer
