// Command crib-shim runs what every pod on a node runs: its shim, and the
// init of each of its containers (and exec'd processes).
//
//	crib-shim shim   the per-pod shim (started by the crib daemon)
//	crib-shim init   a container's init (started by the shim, never by hand)
//
// The pause role never reaches main: nsexec's constructor runs it in C.
// It is its own binary, not a role of crib's, because a Go process pays for
// every package linked into it: the daemon's CRI, image and streaming code
// would cost each idle shim their initialisers' heap, and each container
// start their run time (docs/benchmarks.md).
package main

import (
	"fmt"
	"os"

	_ "github.com/crib-runtime/crib/nsexec" // the constructor of init and pause
	"github.com/crib-runtime/crib/runtime/initproc"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "shim":
		os.Exit(runShim(os.Args[2:]))
	case "init":
		// Only the launcher starts this, after nsexec's constructor has set
		// up the namespaces; Run reports its errors over the init socket.
		if err := initproc.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "crib-shim init:", err)
		}
		os.Exit(1)
	case "version", "--version":
		fmt.Println("crib-shim", version)
		os.Exit(0)
	}
	usage()
	os.Exit(2)
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: crib-shim <command> [flags]

commands (started by crib itself, not by hand):
  shim      the per-pod shim
  init      a container's init
  version   print crib-shim's version
`)
}
