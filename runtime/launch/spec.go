package launch

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/nsexec/nsproto"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// nsFlags maps OCI namespace types to their CLONE_NEW* flags.
var nsFlags = map[specs.LinuxNamespaceType]uint32{
	specs.PIDNamespace: unix.CLONE_NEWPID, specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace: unix.CLONE_NEWNS, specs.IPCNamespace: unix.CLONE_NEWIPC,
	specs.UTSNamespace: unix.CLONE_NEWUTS, specs.UserNamespace: unix.CLONE_NEWUSER,
	specs.CgroupNamespace: unix.CLONE_NEWCGROUP, specs.TimeNamespace: unix.CLONE_NEWTIME,
}

// ErrBadSpec marks a spec that cannot describe a container; callers
// classify it (the shim as InvalidArgument).
var ErrBadSpec = errors.New("invalid OCI spec")

// OptionsFromSpec returns the Options of a container's init (role init)
// that spec describes: namespaces joined by path or created, uid/gid maps,
// oom_score_adj, and the Config for the Go init. The caller adds Binary,
// Place, stdio, Log and, for an overlay rootfs, Config.Rootfs and DevShm.
func OptionsFromSpec(spec *specs.Spec) (Options, error) {
	if spec == nil || spec.Linux == nil || spec.Process == nil || spec.Root == nil {
		return Options{}, fmt.Errorf("%w: process, root and linux are required", ErrBadSpec)
	}
	o := Options{
		Role:        nsproto.RoleInit,
		UIDMappings: spec.Linux.UIDMappings,
		GIDMappings: spec.Linux.GIDMappings,
		OOMScoreAdj: spec.Process.OOMScoreAdj,
		Config:      &initmsg.Config{Version: initmsg.Version, Role: initmsg.RoleInit, Spec: spec},
	}
	for _, ns := range spec.Linux.Namespaces {
		flag, ok := nsFlags[ns.Type]
		if !ok {
			return Options{}, fmt.Errorf("%w: unknown namespace type %q", ErrBadSpec, ns.Type)
		}
		if ns.Path == "" {
			o.New |= flag
		} else {
			o.Join = append(o.Join, Namespace{Type: flag, Path: ns.Path})
		}
	}
	return o, nil
}
