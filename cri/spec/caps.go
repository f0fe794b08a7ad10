package spec

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// allCaps are the capabilities up to CAP_CHECKPOINT_RESTORE (Linux 5.9),
// in kernel number order. A privileged container gets all of them; the Go
// init must skip those above the running kernel's cap_last_cap, as runc
// does, since the list here cannot read /proc.
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// defaultCaps is the set containerd's CRI plugin (and Docker) gives a
// container that asks for nothing else.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// capabilities returns the process's capability sets. Bounding, permitted
// and effective hold the same set; inheritable and ambient hold only the
// ambient capabilities (CRI's add_ambient_capabilities), since a non-empty
// inheritable set lets a file capability grant more than the container was
// given (runc CVE-2022-29162).
//
// held is what the runtime itself can grant (its bounding set; nil: every
// capability): "all" (privileged, add ALL) and the defaults mean all of
// those held, as containerd takes its own set, so a node whose root lacks
// one (CAP_SYS_RESOURCE in a container, a kind node) still runs privileged
// containers. A capability named explicitly that is not held is refused:
// the container would otherwise run without what it asked for.
func capabilities(sc *criapi.LinuxContainerSecurityContext, held []string) (*specs.LinuxCapabilities, error) {
	grantable := func(c string) bool { return held == nil || slices.Contains(held, c) }
	set := make(map[string]bool)
	base := defaultCaps
	if sc.GetPrivileged() || hasAll(sc.GetCapabilities().GetAddCapabilities()) {
		// ALL is applied before the individual names, as containerd does,
		// so add [ALL] drop [CHOWN] means everything but CAP_CHOWN.
		base = allCaps
	}
	for _, c := range base {
		set[c] = grantable(c)
	}
	add := sc.GetCapabilities().GetAddCapabilities()
	drop := sc.GetCapabilities().GetDropCapabilities()
	ambient, err := capNames(sc.GetCapabilities().GetAddAmbientCapabilities())
	if err != nil {
		return nil, err
	}
	if !sc.GetPrivileged() {
		if hasAll(drop) {
			clear(set)
		}
		if err := applyCaps(set, add, true); err != nil {
			return nil, err
		}
		if err := applyCaps(set, drop, false); err != nil {
			return nil, err
		}
	}
	for _, c := range ambient {
		set[c] = true
	}
	explicit, _ := capNames(slices.DeleteFunc(slices.Clone(add), func(n string) bool { return strings.EqualFold(n, "ALL") }))
	for _, c := range append(explicit, ambient...) {
		if set[c] && !grantable(c) {
			return nil, invalidf("capability %s is not in the runtime's bounding set: this node cannot grant it", c)
		}
	}
	caps := ordered(set)
	return &specs.LinuxCapabilities{
		Bounding:    caps,
		Effective:   slices.Clone(caps),
		Permitted:   slices.Clone(caps),
		Inheritable: slices.Clone(ambient),
		Ambient:     slices.Clone(ambient),
	}, nil
}

// CapsInMask names the capabilities set in a kernel capability mask (the
// CapBnd line of /proc/<pid>/status), for Input.Capabilities.
func CapsInMask(mask uint64) []string {
	out := []string{}
	for n, c := range allCaps {
		if mask&(1<<n) != 0 {
			out = append(out, c)
		}
	}
	return out
}

func hasAll(names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, "ALL") })
}

// applyCaps adds or removes the named capabilities, skipping "ALL".
func applyCaps(set map[string]bool, names []string, add bool) error {
	var rest []string
	for _, n := range names {
		if !strings.EqualFold(n, "ALL") {
			rest = append(rest, n)
		}
	}
	canon, err := capNames(rest)
	if err != nil {
		return err
	}
	for _, c := range canon {
		if add {
			set[c] = true
		} else {
			delete(set, c)
		}
	}
	return nil
}

// capNames canonicalises CRI capability names: case-insensitive, with or
// without the CAP_ prefix (kubelet sends them without).
func capNames(names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		c := strings.ToUpper(n)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(allCaps, c) {
			return nil, invalidf("unknown capability %q", n)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(allCaps, a) - slices.Index(allCaps, b) })
	return out, nil
}

// ordered lists a capability set in kernel number order, so specs (and
// golden files) are deterministic.
func ordered(set map[string]bool) []string {
	out := []string{}
	for _, c := range allCaps {
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}
