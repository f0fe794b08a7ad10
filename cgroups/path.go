package cgroups

import (
	"fmt"
	"path"
	"strings"
)

// Driver names, as the kubelet's --cgroup-driver and crib's cgroup_driver
// setting spell them.
const (
	DriverCgroupfs = "cgroupfs"
	DriverSystemd  = "systemd"
)

// DefaultRoot is the parent of crib's own containers that come without one.
const DefaultRoot = "/crib"

// Paths turns the cgroup parents the kubelet passes into cgroup paths. It is
// pure: it touches no file system.
type Paths struct {
	// Driver is crib's cgroup_driver setting: DriverCgroupfs ("" too) or
	// DriverSystemd.
	Driver string
	// Root is the parent of pods that come without one, and under
	// cgroupfs the base of relative parents. Empty means DefaultRoot;
	// under systemd, DefaultRoot means DefaultSlice, and any other value
	// must be a slice's path ("/crib.slice", "/a.slice/a-b.slice").
	Root string
}

// Parent returns the absolute, clean cgroup path for a pod's cgroup parent.
//
// Under cgroupfs, absolute parents ("/kubepods/burstable/pod<uid>") are
// taken as they are; relative ones are placed under Root so they cannot
// land elsewhere by accident; "" means Root itself.
//
// Under systemd, the parent is a slice name as the kubelet's systemd driver
// sends it ("kubepods-burstable-pod<uid>.slice"), expanded as systemd
// expands it; a path of slices ("/kubepods.slice/kubepods-besteffort.slice",
// containerd accepts those) that is exactly such an expansion; or runc's
// "slice:prefix:name" when it names a slice. "" means Root's slice.
func (p Paths) Parent(parent string) (string, error) {
	switch p.Driver {
	case DriverSystemd:
		return p.sliceParent(parent)
	case "", DriverCgroupfs:
	default:
		return "", Preconditionf("cgroup_driver %q: want %q or %q", p.Driver, DriverCgroupfs, DriverSystemd)
	}
	root := p.Root
	if root == "" {
		root = DefaultRoot
	}
	root, err := CleanPath(root)
	if err != nil {
		return "", err
	}
	if isSystemdParent(parent) {
		return "", Preconditionf("cgroup parent %q is a systemd slice but crib uses the %s cgroup driver (cgroup_driver = %q in crib's config); run the kubelet with --cgroup-driver=%s, or crib with cgroup_driver = %q",
			parent, DriverCgroupfs, DriverCgroupfs, DriverCgroupfs, DriverSystemd)
	}
	switch {
	case parent == "":
		return root, nil
	case strings.HasPrefix(parent, "/"):
		return CleanPath(parent)
	default:
		if err := checkElements(parent); err != nil {
			return "", err
		}
		return CleanPath(path.Join(root, parent))
	}
}

// Pod returns the cgroup parent of pod id: Parent, except that a pod that
// names none gets a level of its own under Root, as the kubelet gives each
// pod one: <Root>/pod<id> under cgroupfs, <root slice>-pod<id>.slice under
// systemd ("/crib.slice/crib-pod<id>.slice").
func (p Paths) Pod(parent, id string) (string, error) {
	dir, err := p.Parent(parent)
	if err != nil || parent != "" {
		return dir, err
	}
	if err := checkID(id); err != nil {
		return "", err
	}
	if p.Driver != DriverSystemd {
		return path.Join(dir, "pod"+id), nil
	}
	root := cgUnescape(path.Base(dir))
	return ExpandSlice(strings.TrimSuffix(root, sliceSuffix) + "-pod" + id + sliceSuffix)
}

// Leaf returns the cgroup of container (or pod) id in dir, a path Parent or
// Pod returned: <dir>/<id> under cgroupfs, as containerd and CRI-O place
// them; under systemd the scope crib makes for it, <dir>/crib-<id>.scope.
func (p Paths) Leaf(dir, id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if p.Driver != DriverSystemd {
		return path.Join(dir, id), nil
	}
	name := ScopeName(id)
	if !validUnitName(name, scopeSuffix) {
		return "", Invalidf("container id %q is not usable in a systemd unit name", id)
	}
	return path.Join(dir, cgEscape(name)), nil
}

// Container returns the cgroup path of container id under parent (see
// Parent and Leaf).
func (p Paths) Container(parent, id string) (string, error) {
	dir, err := p.Parent(parent)
	if err != nil {
		return "", err
	}
	return p.Leaf(dir, id)
}

// IsLeaf says whether cgroup p is id's own under either driver (Leaf): a
// record that names another cgroup (its pod's, the kubelet's) is damaged.
func IsLeaf(p, id string) bool {
	base := path.Base(p)
	return id != "" && (base == id || base == ScopeName(id))
}

func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00\n") {
		return Invalidf("container id %q is not a valid cgroup name", id)
	}
	return nil
}

// sliceParent is Parent under the systemd driver.
func (p Paths) sliceParent(parent string) (string, error) {
	if parent == "" {
		return p.rootSlice()
	}
	if slice, prefix, name, ok := parseRuncParent(parent); ok {
		return runcParent(parent, slice, prefix, name)
	}
	if strings.Contains(parent, "/") {
		clean := path.Clean("/" + parent)
		if err := checkElements(parent); err != nil {
			return "", err
		}
		if want, err := ExpandSlice(cgUnescape(path.Base(clean))); err == nil && want == clean {
			return clean, nil
		}
		return "", Preconditionf("cgroup parent %q is not a systemd slice but crib uses the %s cgroup driver (cgroup_driver = %q in crib's config); run the kubelet with --cgroup-driver=%s, or give a slice such as kubepods.slice",
			parent, DriverSystemd, DriverSystemd, DriverSystemd)
	}
	if !strings.HasSuffix(parent, sliceSuffix) {
		return "", Preconditionf("cgroup parent %q is not a systemd slice (<name>.slice) but crib uses the %s cgroup driver (cgroup_driver = %q in crib's config); run the kubelet with --cgroup-driver=%s",
			parent, DriverSystemd, DriverSystemd, DriverSystemd)
	}
	dir, err := ExpandSlice(parent)
	if err != nil {
		return "", fmt.Errorf("cgroup parent: %w", err)
	}
	return dir, nil
}

// runcParent resolves runc's "slice:prefix:name" as a pod's parent: runc
// would make it the scope prefix-name.scope in slice, or the slice name
// when it ends in .slice. crib puts its scopes below a pod's parent, and
// systemd keeps units only below slices (a scope's subtree is delegated,
// not systemd's), so only the slice form can be a parent, and only where
// systemd puts that slice.
func runcParent(v, slice, prefix, name string) (string, error) {
	if !strings.HasSuffix(name, sliceSuffix) {
		return "", Invalidf("cgroup parent %q names the scope %s-%s.scope: a pod's cgroup parent must be a slice (systemd nests units in slices only); give %q or a slice name", v, prefix, name, slice)
	}
	dir, err := ExpandSlice(name)
	if err != nil {
		return "", fmt.Errorf("cgroup parent %q: %w", v, err)
	}
	if slice != "" && parentSlice(name) != slice {
		return "", Invalidf("cgroup parent %q: systemd puts slice %s in %s, not in %s", v, name, parentSlice(name), slice)
	}
	return dir, nil
}

// rootSlice is Root's slice path under systemd.
func (p Paths) rootSlice() (string, error) {
	if p.Root == "" || p.Root == DefaultRoot {
		return ExpandSlice(DefaultSlice)
	}
	root, err := CleanPath(p.Root)
	if err != nil {
		return "", err
	}
	if want, err := ExpandSlice(cgUnescape(path.Base(root))); err != nil || want != root {
		return "", Preconditionf("cgroup_root %q is not a slice's path, which the %s cgroup driver needs: set it to one such as %q", p.Root, DriverSystemd, "/"+DefaultSlice)
	}
	return root, nil
}

// CleanPath checks that p is an absolute cgroup path that stays inside the
// hierarchy and returns it cleaned. Any ".." element is rejected rather than
// resolved: a parent that needs one is a mistake or an attack.
func CleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", Invalidf("cgroup path %q is not absolute", p)
	}
	if err := checkElements(p); err != nil {
		return "", err
	}
	return path.Clean(p), nil
}

// OwnPath is CleanPath for operations that change a cgroup (create, kill,
// remove): the root cgroup is never crib's, so op on "/" is refused.
func OwnPath(op, p string) (string, error) {
	clean, err := CleanPath(p)
	if err != nil {
		return "", err
	}
	if clean == "/" {
		return "", Invalidf("%s cgroup %s: the root cgroup is not crib's", op, clean)
	}
	return clean, nil
}

func checkElements(p string) error {
	if strings.ContainsAny(p, "\x00\n") {
		return Invalidf("cgroup path %q contains a NUL or newline", p)
	}
	for el := range strings.SplitSeq(p, "/") {
		if el == ".." {
			return Invalidf("cgroup path %q escapes the cgroup root", p)
		}
	}
	return nil
}

// isSystemdParent reports whether parent is in the systemd driver's form:
// a slice name ("kubepods-burstable-pod1.slice"), a path of slices, or
// runc's "slice:prefix:name".
func isSystemdParent(parent string) bool {
	if strings.HasSuffix(parent, ".slice") {
		return true
	}
	return strings.Count(parent, ":") == 2 && !strings.Contains(parent, "/")
}

// Rel returns p (absolute, clean) relative to the hierarchy root, "." for
// the root itself, as the cgfs helpers want it.
func Rel(p string) string {
	r := strings.TrimPrefix(p, "/")
	if r == "" {
		return "."
	}
	return r
}
