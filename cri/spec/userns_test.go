package spec

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usernsInput is baseInput in a hostUsers: false pod (the kubelet's
// mapping on the pod and the container) with a volume the kubelet marks
// with the same mapping.
func usernsInput() Input {
	in := baseInput()
	maps := func() []*criapi.IDMapping { return []*criapi.IDMapping{{ContainerId: 0, HostId: 65536, Length: 65536}} }
	u := func() *criapi.UserNamespace {
		return &criapi.UserNamespace{Mode: criapi.NamespaceMode_POD, Uids: maps(), Gids: maps()}
	}
	in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u()
	in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u()
	in.UserNS = "/run/crib/pods/" + testSandboxID + "/ns/user"
	in.Config.Mounts = []*criapi.Mount{{ContainerPath: "/data", HostPath: "/srv/shared", UidMappings: maps(), GidMappings: maps()}}
	return in
}

// TestUserNamespaceSpec: a container of a hostUsers: false pod joins the
// pod's pinned user namespace, and its spec carries the pod's mappings
// (which runtime idmaps the rootfs with) and the volume's; the shapes
// crib cannot honour are refused.
func TestUserNamespaceSpec(t *testing.T) {
	s := mustContainer(t, usernsInput())
	var joined string
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			joined = ns.Path
		}
	}
	if joined != usernsInput().UserNS {
		t.Errorf("user namespace %q, want the pod's %q", joined, usernsInput().UserNS)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 65536, Size: 65536}}
	if len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0] != want[0] || len(s.Linux.GIDMappings) != 1 || s.Linux.GIDMappings[0] != want[0] {
		t.Errorf("mappings %v %v, want %v", s.Linux.UIDMappings, s.Linux.GIDMappings, want)
	}
	var vol *specs.Mount
	for i := range s.Mounts {
		if s.Mounts[i].Destination == "/data" {
			vol = &s.Mounts[i]
		}
	}
	if vol == nil || len(vol.UIDMappings) != 1 || vol.UIDMappings[0] != want[0] {
		t.Errorf("volume %+v: want the pod's mappings on it", vol)
	}
	if s := mustContainer(t, baseInput()); len(s.Linux.UIDMappings) != 0 {
		t.Errorf("host user namespace pod: mappings %v", s.Linux.UIDMappings)
	}

	for name, tc := range map[string]struct {
		edit    func(*Input)
		mention string
	}{
		"no pinned path": {func(in *Input) { in.UserNS = "" }, "path is missing"},
		"container asks for the host's": {func(in *Input) {
			sc(in).NamespaceOptions.UsernsOptions = &criapi.UserNamespace{Mode: criapi.NamespaceMode_NODE}
		}, "user namespace"},
		"container mode CONTAINER": {func(in *Input) {
			sc(in).NamespaceOptions.UsernsOptions = &criapi.UserNamespace{Mode: criapi.NamespaceMode_CONTAINER}
		}, "CONTAINER"},
		"volume with other mappings": {func(in *Input) {
			in.Config.Mounts[0].UidMappings = []*criapi.IDMapping{{ContainerId: 0, HostId: 1 << 20, Length: 65536}}
		}, "pod's user namespace mappings"},
		"volume mappings in a host-users pod": {func(in *Input) {
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = nil
			sc(in).NamespaceOptions.UsernsOptions = nil
		}, "hostUsers: false"},
	} {
		t.Run(name, func(t *testing.T) {
			in := usernsInput()
			tc.edit(&in)
			_, err := Container(in)
			checkErr(t, err, invalid, tc.mention)
		})
	}
}
