// nri-rdt-class is crib's example NRI plugin: it puts each new container
// in the RDT class a policy chooses by the pod's namespace and QoS class
// (nri/rdtclass). Started by the runtime from its plugin directory (as
// NN-rdt-class, its policy in the plugin config directory's
// NN-rdt-class.conf), or by hand against a runtime's NRI socket with
// -policy.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/nri/rdtclass"
)

func main() {
	policyFile := flag.String("policy", "", "policy file (YAML); a runtime-launched plugin gets its policy from its config file instead")
	name := flag.String("name", "rdt-class", "plugin name, when started by hand")
	idx := flag.String("idx", "50", "plugin index (order among plugins), when started by hand")
	socket := flag.String("socket", "", "the runtime's NRI socket, when started by hand (default: NRI's)")
	flag.Parse()
	if err := run(*policyFile, *name, *idx, *socket); err != nil {
		fmt.Fprintln(os.Stderr, "nri-rdt-class:", err)
		os.Exit(1)
	}
}

func run(policyFile, name, idx, socket string) error {
	var policy *rdtclass.Policy
	if policyFile != "" {
		data, err := os.ReadFile(policyFile)
		if err != nil {
			return err
		}
		if policy, err = rdtclass.Parse(data); err != nil {
			return err
		}
	}
	// A plugin the runtime launched finds its name, index and connection
	// in its environment, which options would override.
	var opts []stub.Option
	if os.Getenv(api.PluginNameEnvVar) == "" {
		opts = append(opts, stub.WithPluginName(name), stub.WithPluginIdx(idx))
	}
	if socket != "" {
		opts = append(opts, stub.WithSocketPath(socket))
	}
	s, err := stub.New(rdtclass.New(policy), opts...)
	if err != nil {
		return fmt.Errorf("create plugin: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	return s.Run(ctx)
}
