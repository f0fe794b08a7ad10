package cgroups

import (
	"path"
	"strings"
)

// systemd's names for the cgroups it manages. Each unit's cgroup is a
// directory named after the unit (escaped, cgEscape); a slice's parent is
// the slice its name's prefix up to the last dash names, so a slice's path
// follows from its name alone (systemd.slice(5)).
const (
	// RootSlice is the slice of the root cgroup.
	RootSlice = "-.slice"
	// DefaultSlice holds the pods that come without a cgroup parent
	// (crictl's) under the systemd driver, as DefaultRoot does under
	// cgroupfs: one slice each, crib-pod<id>.slice.
	DefaultSlice = "crib.slice"
	// ScopePrefix begins the name of every scope crib makes, crib-<id>.scope,
	// as containerd's are cri-containerd-<id>.scope and CRI-O's crio-<id>.scope.
	ScopePrefix = "crib"

	sliceSuffix = ".slice"
	scopeSuffix = ".scope"
	// unitNameMax is systemd's UNIT_NAME_MAX less its NUL.
	unitNameMax = 255
)

// validUnitName says whether name is a unit name systemd takes without an
// instance (unit_name_is_valid with UNIT_NAME_PLAIN): at most 255
// characters of [A-Za-z0-9:_.\-\\], a non-empty prefix, then "." and the
// suffix. Other characters must be escaped (systemd-escape(1): "\x2f").
func validUnitName(name, suffix string) bool {
	prefix, ok := strings.CutSuffix(name, suffix)
	if !ok || prefix == "" || len(name) > unitNameMax {
		return false
	}
	for _, c := range []byte(prefix) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == ':', c == '-', c == '_', c == '.', c == '\\':
		default:
			return false
		}
	}
	return true
}

// ExpandSlice returns the cgroup path of the slice unit name as systemd
// places it (cg_slice_to_path): every dash ends the name of a parent slice,
// so "kubepods-burstable-pod1.slice" is
// "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice",
// and RootSlice is "/". A name systemd refuses (a leading, trailing or
// doubled dash, a character outside unit names, an instance) is
// InvalidArgument naming it. An escaped dash ("\x2d") is no separator.
func ExpandSlice(name string) (string, error) {
	if name == RootSlice {
		return "/", nil
	}
	if !validUnitName(name, sliceSuffix) {
		return "", Invalidf("slice %q is not a valid systemd slice name (characters A-Z a-z 0-9 : _ . \\ -, ending in .slice)", name)
	}
	prefix := strings.TrimSuffix(name, sliceSuffix)
	if strings.HasPrefix(prefix, "-") || strings.HasSuffix(prefix, "-") || strings.Contains(prefix, "--") {
		return "", Invalidf("slice %q: a dash separates parent slices, so it may not lead, end or double", name)
	}
	var b strings.Builder
	for i, c := range prefix {
		if c == '-' {
			b.WriteString("/" + cgEscape(prefix[:i]+sliceSuffix))
		}
	}
	b.WriteString("/" + cgEscape(name))
	return b.String(), nil
}

// parentSlice is the slice systemd puts slice name in: the name up to its
// last dash, RootSlice for a name without one.
func parentSlice(name string) string {
	prefix := strings.TrimSuffix(name, sliceSuffix)
	if i := strings.LastIndexByte(prefix, '-'); i > 0 {
		return prefix[:i] + sliceSuffix
	}
	return RootSlice
}

// cgroupControllers are the controller names of systemd's cgroup tree
// (cgroup_controller_to_string): a cgroup named like one of their files
// ("cpu.slice") is escaped so that it cannot clash with an interface file.
var cgroupControllers = []string{"cpu", "cpuacct", "cpuset", "io", "blkio", "memory", "devices", "pids",
	"bpf-firewall", "bpf-devices", "bpf-foreign", "bpf-socket-bind", "bpf-restrict-network-interfaces"}

// cgEscape is systemd's cg_escape: a name that could clash with a kernel
// file name, or begins with "_" or ".", is prefixed with "_"; reading a
// cgroup name back, one leading "_" is dropped (cgUnescape).
func cgEscape(name string) string {
	needs := strings.HasPrefix(name, "_") || strings.HasPrefix(name, ".") ||
		name == "notify_on_release" || name == "release_agent" || name == "tasks" ||
		strings.HasPrefix(name, "cgroup.")
	for _, c := range cgroupControllers {
		if rest, ok := strings.CutPrefix(name, c); ok && strings.HasPrefix(rest, ".") {
			needs = true
		}
	}
	if needs {
		return "_" + name
	}
	return name
}

func cgUnescape(name string) string { return strings.TrimPrefix(name, "_") }

// Unit returns the name of the systemd unit whose cgroup is p (absolute,
// clean), and whether p is one: its last element, unescaped, is a slice or
// scope name. A plain directory (a cgroupfs parent) is none.
func Unit(p string) (string, bool) {
	name := cgUnescape(path.Base(p))
	if validUnitName(name, scopeSuffix) {
		return name, true
	}
	if _, err := ExpandSlice(name); err == nil && name != RootSlice {
		return name, true
	}
	return "", false
}

// ScopeOf returns the unit name and slice of the scope whose cgroup is p,
// checking that systemd would make exactly p for it: a scope's cgroup is
// its slice's plus its own name, and the slice's path follows from its
// name. Anything else is InvalidArgument: systemd would put the process
// elsewhere than the cgroup crib made and filled.
func ScopeOf(p string) (scope, slice string, err error) {
	scope = cgUnescape(path.Base(p))
	if !validUnitName(scope, scopeSuffix) || path.Join(path.Dir(p), cgEscape(scope)) != p {
		return "", "", Invalidf("cgroup %s is not a systemd scope's (<slice path>/<name>.scope)", p)
	}
	dir := path.Dir(p)
	slice = RootSlice
	if dir != "/" {
		slice = cgUnescape(path.Base(dir))
	}
	want, err := ExpandSlice(slice)
	if err != nil || want != dir {
		return "", "", Invalidf("cgroup %s: systemd puts the slice of scope %s at %s, not at %s", p, scope, want, dir)
	}
	return scope, slice, nil
}

// ScopeName is the name of crib's scope for a container or pod id.
func ScopeName(id string) string { return ScopePrefix + "-" + id + scopeSuffix }

// parseRuncParent parses runc's systemd cgroupsPath, "slice:prefix:name":
// the unit prefix-name.scope in slice, or the slice name itself when name
// ends in .slice. ok is false for a value not of that form. slice ""
// means runc's default, system.slice.
func parseRuncParent(v string) (slice, prefix, name string, ok bool) {
	parts := strings.Split(v, ":")
	if len(parts) != 3 || strings.Contains(v, "/") {
		return "", "", "", false
	}
	// ':' is a valid unit name character too: "a:b:c.slice" is a slice.
	// runc's form has a slice, or nothing, before the first colon.
	if parts[0] != "" && !strings.HasSuffix(parts[0], sliceSuffix) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// kubepodsSlice is the kubelet's slice of pods under the systemd driver:
// kubepods.slice, or <root>-kubepods.slice under a kubelet --cgroup-root.
const kubepodsSlice = "kubepods" + sliceSuffix

// CribSlice says whether p, a cgroup path, lies where only crib and the
// kubelet make slices: it is root (crib's root slice, Paths.Parent("")) or
// below it, or it is, or lies in, a kubepods slice. Elsewhere a slice
// crib would make for a pod may later hold what another manager puts
// there (logind puts a user's sessions in user-<uid>.slice when the user
// logs in), so crib neither makes nor stops slices there.
func CribSlice(p, root string) bool {
	if root != "" && (p == root || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")) {
		return true
	}
	for el := range strings.SplitSeq(p, "/") {
		if name := cgUnescape(el); name == kubepodsSlice || strings.HasSuffix(name, "-"+kubepodsSlice) {
			return true
		}
	}
	return false
}
