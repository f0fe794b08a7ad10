package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// nsMode is where one of a container's namespaces comes from.
type nsMode uint8

const (
	modePod       nsMode = iota // the pod's, joined by path
	modeContainer               // a new one for this container
	modeNode                    // the host's: no entry in the spec
	modeTarget                  // another container's, joined by path
)

// nsModes are the container's namespace modes. uts has no CRI field: it
// follows the network, as in containerd (a host-network pod has the host's
// hostname).
type nsModes struct {
	net, pid, ipc, uts nsMode
	// user is modePod or modeNode, and always the pod's: containers of a
	// pod share its user namespace or the host's (KEP 127).
	user nsMode
}

// namespaceModes reads the container's NamespaceOptions, falling back to
// the sandbox's when the container has none (crictl users often leave them
// out). Kubelet sets both, identical but for pid. A host namespace is the
// pod's decision (hostNetwork, hostIPC, hostPID, which admission checks on
// the pod): a container may use one only where its pod does, and POD in
// such a pod means the host's, the pod's own.
func namespaceModes(in Input) (nsModes, error) {
	m, err := readModes(in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(), "")
	if err != nil {
		return nsModes{}, err
	}
	pod, err := readModes(in.Sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions(), "pod ")
	if err != nil {
		return nsModes{}, err
	}
	if in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions() == nil {
		m = pod
	}
	if u := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions(); u != nil && m.user != pod.user {
		return nsModes{}, invalidf("user namespace: the container asks for mode %s in a pod whose user namespace is the other one", u.GetMode())
	}
	m.user = pod.user
	for _, n := range []struct {
		name string
		ctr  *nsMode
		pod  nsMode
	}{{"network", &m.net, pod.net}, {"ipc", &m.ipc, pod.ipc}, {"pid", &m.pid, pod.pid}} {
		switch {
		case *n.ctr == modeNode && n.pod != modeNode:
			return nsModes{}, invalidf("%s namespace: the container asks for the host's (NODE) in a pod that does not use it", n.name)
		case *n.ctr == modePod && n.pod == modeNode:
			*n.ctr = modeNode
		}
	}
	m.uts = m.net
	return m, nil
}

// readModes reads one NamespaceOption (a nil one is all POD, the CRI's
// zero value); prefix names whose it is in errors.
func readModes(opts *criapi.NamespaceOption, prefix string) (nsModes, error) {
	var (
		m   nsModes
		err error
	)
	m.user = modeNode
	// A nil option is the host's: the CRI's zero mode (POD) does not apply.
	switch u := opts.GetUsernsOptions(); {
	case u == nil || u.GetMode() == criapi.NamespaceMode_NODE:
	case u.GetMode() == criapi.NamespaceMode_POD:
		m.user = modePod
	default:
		return nsModes{}, invalidf("%suser namespace mode %s is not supported (only NODE and POD)", prefix, u.GetMode())
	}
	if m.net, err = mode(prefix+"network", opts.GetNetwork(), false); err != nil {
		return nsModes{}, err
	}
	if m.ipc, err = mode(prefix+"ipc", opts.GetIpc(), false); err != nil {
		return nsModes{}, err
	}
	if m.pid, err = mode(prefix+"pid", opts.GetPid(), true); err != nil {
		return nsModes{}, err
	}
	if m.pid == modeTarget && opts.GetTargetId() == "" {
		return nsModes{}, invalidf("%spid namespace mode TARGET without a target_id", prefix)
	}
	return m, nil
}

func mode(name string, m criapi.NamespaceMode, targetOK bool) (nsMode, error) {
	switch m {
	case criapi.NamespaceMode_POD:
		return modePod, nil
	case criapi.NamespaceMode_CONTAINER:
		return modeContainer, nil
	case criapi.NamespaceMode_NODE:
		return modeNode, nil
	case criapi.NamespaceMode_TARGET:
		if targetOK {
			return modeTarget, nil
		}
	}
	// CRI allows TARGET for pid only ("It is not possible to specify
	// different targets for each namespace").
	return 0, invalidf("%s namespace mode %s is not supported", name, m)
}

// namespaces returns the spec's namespace list. The mount namespace is
// always new (the rootfs exists only inside it); the cgroup namespace is
// new unless the container is privileged, so /sys/fs/cgroup shows the
// container's own cgroup as its root (cgroup v2, KEP 2254), while a
// privileged one sees the host's hierarchy as containerd gives it.
func namespaces(in Input, m nsModes) ([]specs.LinuxNamespace, error) {
	out := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if m.user == modePod {
		// The pod's, joined first (nsexec orders user before the others,
		// which it owns).
		if in.UserNS == "" {
			return nil, invalidf("user namespace: the pod's namespace path is missing")
		}
		out = append(out, specs.LinuxNamespace{Type: specs.UserNamespace, Path: in.UserNS})
	}
	for _, n := range []struct {
		typ  specs.LinuxNamespaceType
		mode nsMode
		path string
	}{
		{specs.NetworkNamespace, m.net, in.NetNS},
		{specs.IPCNamespace, m.ipc, in.IPCNS},
		{specs.UTSNamespace, m.uts, in.UTSNS},
		{specs.PIDNamespace, m.pid, in.PidNS},
	} {
		switch n.mode {
		case modeNode:
			continue
		case modeContainer:
			out = append(out, specs.LinuxNamespace{Type: n.typ})
		case modePod, modeTarget:
			// Without the path the container would silently get a fresh
			// namespace (no network, no shared processes): a caller bug.
			if n.path == "" {
				return nil, invalidf("%s namespace: the pod's namespace path is missing", n.typ)
			}
			out = append(out, specs.LinuxNamespace{Type: n.typ, Path: n.path})
		}
	}
	if !in.Config.GetLinux().GetSecurityContext().GetPrivileged() {
		out = append(out, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return out, nil
}

func idMappings(in []*criapi.IDMapping) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, len(in))
	for i, m := range in {
		out[i] = specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
	}
	return out
}

// podUserns is the pod's user namespace option when it has a namespace of
// its own (POD), nil otherwise.
func podUserns(in Input) *criapi.UserNamespace {
	u := in.Sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u == nil || u.GetMode() != criapi.NamespaceMode_POD {
		return nil
	}
	return u
}

// checkMountIDMap accepts a mount's id mappings only as the kubelet sends
// them: those of the pod's own user namespace, whose file descriptor is
// what mount_setattr(MOUNT_ATTR_IDMAP) takes. Any other mapping would need
// a user namespace per mount.
func checkMountIDMap(in Input, m *criapi.Mount) error {
	dst := m.GetContainerPath()
	u := podUserns(in)
	if u == nil {
		return invalidf("mount %q: id mappings need a pod with a user namespace of its own (hostUsers: false)", dst)
	}
	same := func(a, b []*criapi.IDMapping) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i].GetContainerId() != b[i].GetContainerId() || a[i].GetHostId() != b[i].GetHostId() || a[i].GetLength() != b[i].GetLength() {
				return false
			}
		}
		return true
	}
	if !same(m.GetUidMappings(), u.GetUids()) || !same(m.GetGidMappings(), u.GetGids()) {
		return invalidf("mount %q: id mappings must be the pod's user namespace mappings", dst)
	}
	return nil
}
