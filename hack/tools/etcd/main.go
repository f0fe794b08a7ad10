// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at the
// version the Kubernetes module pins, for the node e2e suite's companions and
// the local cluster. etcd's own main package lives in a module Kubernetes does
// not require; its etcdmain package is the whole program.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
