// Command crib-init is a container's init, and the init of every process
// exec'd into a container: started only by crib's launcher (runtime/launch),
// which runs it from its sealed copy beside the sealed crib-shim.
//
//	crib-init init   set up the container or the exec'd process, then execve
//
// It is crib-shim's "init" command in a binary of its own because a Go
// process runs the initialisers of every package linked into it before
// main, and touches their pages: the shim's ttrpc, protobuf, klog, cgroups
// and rdt cost each container start and each exec about 0.6 ms of CPU
// (docs/benchmarks.md). It links nsexec and runtime/initproc, nothing
// else of crib's. On amd64 `make build` links it without libc (nolibc.go,
// hack/build.sh): glibc's start-up and cgo's threads cost each start
// another ~1.5 ms of CPU on a virtual machine.
package main

import (
	"fmt"
	"os"

	_ "github.com/crib-runtime/crib/nsexec" // the constructor: setns, clone, before the Go runtime
	"github.com/crib-runtime/crib/runtime/initproc"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] != "init" {
		fmt.Fprintln(os.Stderr, "usage: crib-init init (started by crib itself, not by hand)")
		os.Exit(2)
	}
	// Run reports its errors over the init socket; this is for a human
	// who started it without one.
	if err := initproc.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "crib-init:", err)
	}
	os.Exit(1)
}
