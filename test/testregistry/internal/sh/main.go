// Command sh is the node e2e busybox image's /bin/sh: busybox's ash, as in
// the upstream busybox 1.37 image, except where Debian's 1.35 ash differs
// from it. Since busybox 1.36 ash keeps environment variables whose names
// are no shell identifiers (envFrom makes "data-1") and passes them to the
// commands it runs; 1.35 drops them. When the environment has such a
// variable this runs bash, which keeps them too; otherwise ash, whose
// messages the specs compare ("/bin/sh: can't create /file: Read-only
// file system").
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	prog := "/bin/busybox" // argv[0] ("sh", "/bin/sh") names the applet
	for _, kv := range os.Environ() {
		if name, _, ok := strings.Cut(kv, "="); ok && !identifier(name) {
			prog = "/bin/bash"
			break
		}
	}
	err := syscall.Exec(prog, os.Args, os.Environ())
	fmt.Fprintf(os.Stderr, "sh: exec %s: %v\n", prog, err)
	os.Exit(127)
}

// identifier reports whether name is a shell variable name.
func identifier(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for _, c := range name {
		if c != '_' && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
