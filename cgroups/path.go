package cgroups

import (
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
	// Driver is crib's cgroup_driver setting. Only DriverCgroupfs is
	// implemented.
	Driver string
	// Root is the parent of containers that come without one, and the
	// base of relative parents. Empty means DefaultRoot.
	Root string
}

// Parent returns the absolute, clean cgroup path for a pod's cgroup parent.
// Absolute parents ("/kubepods/burstable/pod<uid>") are taken as they are;
// relative ones are placed under Root so they cannot land elsewhere by
// accident; "" means Root itself.
func (p Paths) Parent(parent string) (string, error) {
	if p.Driver != "" && p.Driver != DriverCgroupfs {
		return "", Preconditionf("cgroup_driver %q is not implemented; set cgroup_driver = %q in crib's config and run the kubelet with --cgroup-driver=%s",
			p.Driver, DriverCgroupfs, DriverCgroupfs)
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
		return "", Preconditionf("cgroup parent %q is a systemd slice but crib uses the %s cgroup driver (cgroup_driver = %q in crib's config); run the kubelet with --cgroup-driver=%s",
			parent, DriverCgroupfs, DriverCgroupfs, DriverCgroupfs)
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

// Container returns the cgroup path of container id under parent (see Parent).
func (p Paths) Container(parent, id string) (string, error) {
	dir, err := p.Parent(parent)
	if err != nil {
		return "", err
	}
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00\n") {
		return "", Invalidf("container id %q is not a valid cgroup name", id)
	}
	return path.Join(dir, id), nil
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
