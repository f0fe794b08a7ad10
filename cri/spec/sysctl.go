package spec

import (
	"strings"
)

// sysctlNamespace is the namespace a sysctl belongs to, kubelet's table
// (pkg/kubelet/sysctl/namespace.go): only these are namespaced, so only
// these can be set for one pod without changing the node.
func sysctlNamespace(name string) string {
	if name == "kernel.sem" {
		return "ipc"
	}
	for _, p := range []struct{ prefix, ns string }{
		{"kernel.shm", "ipc"},
		{"kernel.msg", "ipc"},
		{"fs.mqueue.", "ipc"},
		{"net.", "net"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.ns
		}
	}
	return ""
}

// sysctls validates the pod's sysctls for this container. A sysctl is
// written inside the container's namespaces, so one whose namespace is the
// host's would change the node: refused, like one that is not namespaced at
// all. Kubelet refuses unsafe sysctls earlier; crictl and other clients do
// not, and this is the last place before a write to /proc/sys.
func sysctls(in map[string]string, ns nsModes) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for name, v := range in {
		n := dotted(name)
		if !validSysctlName(n) {
			return nil, invalidf("sysctl %q: malformed name", name)
		}
		if strings.ContainsAny(v, "\x00\n") {
			return nil, invalidf("sysctl %q: value contains a NUL or newline", name)
		}
		switch sysctlNamespace(n) {
		case "net":
			if ns.net == modeNode {
				return nil, invalidf("sysctl %q: not allowed with the host's network namespace", name)
			}
		case "ipc":
			if ns.ipc == modeNode {
				return nil, invalidf("sysctl %q: not allowed with the host's IPC namespace", name)
			}
		default:
			return nil, invalidf("sysctl %q is not namespaced; setting it would change the node", name)
		}
		out[n] = v
	}
	return out, nil
}

// validSysctlName reports whether a dotted name stays inside /proc/sys:
// no component (with "/" read as the "." it stands for) may be empty, "."
// or "..", the rule the Go init applies again before it writes.
func validSysctlName(n string) bool {
	if strings.ContainsAny(n, "\x00 \t\n") {
		return false
	}
	for _, c := range strings.Split(n, ".") {
		c = strings.ReplaceAll(c, "/", ".")
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// dotted converts a sysctl name given with slashes ("net/ipv4/conf/eth0.1/
// forwarding") to the dotted form, swapping '.' and '/' as kubelet does
// (sysctl.ConvertSysctlVariableToDotsSeparator), so an interface name with
// a dot survives as "net.ipv4.conf.eth0/1.forwarding".
func dotted(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, name)
}
