// Package sysctl knows which sysctls are namespaced, and so may be set for one
// pod without changing the node, and checks sysctl names and values before
// anything is written under /proc/sys. It is shared by cri/spec (container
// specs) and sandbox (pod admission), so both apply one table.
//
// It imports only the standard library and errdefs. Internal to crib; no API
// compatibility promised.
package sysctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
)

// Namespace is the kernel namespace a sysctl belongs to.
type Namespace string

// The namespaces kubelet's table knows. None means the sysctl is not
// namespaced: writing it from any pod would change the node.
const (
	None Namespace = ""
	IPC  Namespace = "ipc"
	Net  Namespace = "net"
)

// NamespaceOf returns the namespace of a dotted sysctl name, from kubelet's
// table (pkg/kubelet/sysctl/namespace.go). UTS sysctls (kernel.hostname,
// kernel.domainname) are not in it: the hostname comes from the pod config.
func NamespaceOf(name string) Namespace {
	if name == "kernel.sem" {
		return IPC
	}
	for _, p := range []struct {
		prefix string
		ns     Namespace
	}{
		{"kernel.shm", IPC},
		{"kernel.msg", IPC},
		{"fs.mqueue.", IPC},
		{"net.", Net},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.ns
		}
	}
	return None
}

// Validate checks a pod's sysctls and returns them with dotted names. A
// sysctl is written inside the pod's namespaces, so one whose namespace is
// the host's (hostNet, hostIPC) would change the node and is refused, like
// one that is not namespaced at all. Kubelet refuses unsafe sysctls earlier;
// crictl and other clients do not. Errors wrap errdefs.ErrInvalidArgument.
func Validate(in map[string]string, hostNet, hostIPC bool) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for name, v := range in {
		n := Dotted(name)
		if !ValidName(n) {
			return nil, invalidf("sysctl %q: malformed name", name)
		}
		if strings.ContainsAny(v, "\x00\n") {
			return nil, invalidf("sysctl %q: value contains a NUL or newline", name)
		}
		switch NamespaceOf(n) {
		case Net:
			if hostNet {
				return nil, invalidf("sysctl %q: not allowed with the host's network namespace", name)
			}
		case IPC:
			if hostIPC {
				return nil, invalidf("sysctl %q: not allowed with the host's IPC namespace", name)
			}
		default:
			return nil, invalidf("sysctl %q is not namespaced; setting it would change the node", name)
		}
		out[n] = v
	}
	return out, nil
}

// ValidName reports whether a dotted name stays inside /proc/sys: no
// component (with "/" read as the "." it stands for) may be empty, "." or
// "..", and no whitespace or NUL may appear. The Go init applies the same
// rule again before it writes.
func ValidName(n string) bool {
	if n == "" || strings.ContainsAny(n, "\x00 \t\n") {
		return false
	}
	for c := range strings.SplitSeq(n, ".") {
		c = strings.ReplaceAll(c, "/", ".")
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// Dotted converts a sysctl name given with slashes ("net/ipv4/conf/eth0.1/
// forwarding") to the dotted form, swapping '.' and '/' as kubelet does
// (sysctl.ConvertSysctlVariableToDotsSeparator), so an interface name with
// a dot survives as "net.ipv4.conf.eth0/1.forwarding".
func Dotted(name string) string {
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

func invalidf(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// Path maps a sysctl name to its file, in sysctl(8)'s notation: "."
// separates components and "/" stands for a "." inside one
// ("net.ipv4.conf.eth0/100.forwarding" is interface eth0.100). No component
// may be empty, "." or "..": the name must not climb out of /proc/sys.
func Path(name string) (string, error) {
	comps := strings.Split(name, ".")
	for i, c := range comps {
		c = strings.ReplaceAll(c, "/", ".")
		if c == "" || c == "." || c == ".." || strings.ContainsRune(c, 0) {
			return "/proc/sys", errors.New("invalid name")
		}
		comps[i] = c
	}
	return "/proc/sys/" + strings.Join(comps, "/"), nil
}
