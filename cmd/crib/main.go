// Command crib is the crib container runtime's daemon and developer tools:
//
//	crib daemon    serve the CRI on a unix socket
//	crib image     import images into the daemon's store (crib image import)
//	crib run-oci   run an OCI bundle in the foreground (a developer command)
//	crib init      the init of run-oci's container (never by hand)
//	crib version   print the version
//
// What runs once per pod (the shim, container inits, pause) is crib-shim,
// a separate, smaller binary the daemon finds next to its own.
package main

import (
	"fmt"
	"os"

	_ "github.com/crib-runtime/crib/nsexec" // the constructor of crib init and pause
	"github.com/crib-runtime/crib/runtime/initproc"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		usage()
		return 2
	}
	switch args[0] {
	case "daemon":
		return runDaemon(args[1:])
	case "image":
		return runImage(args[1:])
	case "run-oci":
		return runOCI(args[1:])
	case "init":
		// Only the launcher starts this, after nsexec's constructor has set
		// up the namespaces; Run reports its errors over the init socket.
		if err := initproc.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "crib init:", err)
		}
		return 1
	case "userns-hold":
		// Only the daemon starts this (sandbox/nsfs.PinUser), in a new
		// user namespace it is pinning: exit once stdin closes.
		nsfs.Hold()
		return 0
	case "version", "--version":
		fmt.Println("crib", version)
		return 0
	case "help", "-h", "--help":
		usage()
		return 0
	}
	fmt.Fprintf(os.Stderr, "crib: unknown command %q\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: crib <command> [flags]

commands:
  daemon    serve the Kubernetes CRI on a unix socket (crib daemon -h for flags)
  image     crib image import: load docker save or OCI archives into the image store
  run-oci   run an OCI bundle in the foreground, like runc run (developer command)
  version   print crib's version
`)
}
