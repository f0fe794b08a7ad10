package launch_test

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/launch"
)

func TestOptionsFromSpec(t *testing.T) {
	adj := -998
	spec := &specs.Spec{
		Process: &specs.Process{Args: []string{"x"}, OOMScoreAdj: &adj},
		Root:    &specs.Root{Path: "/r"},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/ns/net"}, {Type: specs.MountNamespace},
		}},
	}
	o, err := launch.OptionsFromSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if o.Role != nsproto.RoleInit || o.New != unix.CLONE_NEWPID|unix.CLONE_NEWNS || o.OOMScoreAdj == nil || *o.OOMScoreAdj != -998 {
		t.Errorf("options %+v", o)
	}
	if len(o.Join) != 1 || o.Join[0].Type != unix.CLONE_NEWNET || o.Join[0].Path != "/run/ns/net" {
		t.Errorf("join %+v", o.Join)
	}
	if o.Config == nil || o.Config.Spec != spec {
		t.Errorf("config %+v", o.Config)
	}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
	if _, err := launch.OptionsFromSpec(spec); !errors.Is(err, launch.ErrBadSpec) {
		t.Errorf("unknown namespace: %v", err)
	}
	if _, err := launch.OptionsFromSpec(&specs.Spec{}); !errors.Is(err, launch.ErrBadSpec) {
		t.Errorf("empty spec: %v", err)
	}
}
