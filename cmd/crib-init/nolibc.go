//go:build !cgo

package main

// Without cgo, nsexec runs from the entry point of its build without libc
// (make build links crib-init so; hack/build.sh).
import _ "github.com/crib-runtime/crib/nsexec/nolibc"
