// Command nriplugin is an NRI plugin for crib's tests, run by the daemon
// as a pre-installed plugin (plugin_path/NN-nriplugin): each line of its
// configuration (plugin_config_path/NN-nriplugin.conf) is NAME=value, an
// environment variable it adds to every container crib creates.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type plugin struct{ env [][2]string }

// Configure reads the configuration crib passes from the plugin's .conf.
func (p *plugin) Configure(_ context.Context, config, _, _ string) (api.EventMask, error) {
	for line := range strings.SplitSeq(config, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return 0, fmt.Errorf("config line %q is not NAME=value", line)
		}
		p.env = append(p.env, [2]string{k, v})
	}
	return api.MustParseEventMask("CreateContainer"), nil
}

func (p *plugin) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	adj := &api.ContainerAdjustment{}
	for _, e := range p.env {
		adj.AddEnv(e[0], e[1])
	}
	return adj, nil, nil
}

func main() {
	// Started by the runtime: name, index and connection come from the
	// environment it sets.
	s, err := stub.New(&plugin{})
	if err == nil {
		err = s.Run(context.Background())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nriplugin:", err)
		os.Exit(1)
	}
}
