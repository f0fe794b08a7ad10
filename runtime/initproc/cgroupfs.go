package initproc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/mountinfo"
	"github.com/crib-runtime/crib/runtime/initmsg"
)

// hostCgroupRoot is where the host mounts its cgroup hierarchies; init
// reads it before pivot_root, when the mount namespace is still a copy of
// the host's.
const hostCgroupRoot = "/sys/fs/cgroup"

// cgroup mounts the container's view of the cgroup filesystem at dest.
//
// On a cgroup v2 host it is one cgroup2 mount: a fresh one when the
// container has its own cgroup namespace (which then shows its cgroup as
// the root), else a bind of the container's own cgroup directory. On a v1
// (or hybrid) host it is, as runc does, a tmpfs holding one directory per
// hierarchy, each a mount of that hierarchy in a new cgroup namespace or a
// bind of the container's own cgroup in it otherwise. Options such as "ro"
// apply to every hierarchy and to the tmpfs.
func (mt *mounter) cgroup(dest string, o mountOptions) error {
	var st unix.Statfs_t
	if err := unix.Statfs(hostCgroupRoot, &st); err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", dest, err)
	}
	own := newNamespace(mt.spec, specs.CgroupNamespace)
	o.data = nil
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		if own {
			return mt.fs("cgroup2", dest, "cgroup2", o)
		}
		paths, err := procCgroups()
		if err != nil {
			return fmt.Errorf("mount cgroup on %s: %w", dest, err)
		}
		o.flags |= unix.MS_BIND
		return mt.bind(path.Join(hostCgroupRoot, paths[""]), dest, o)
	}
	return mt.cgroupV1(dest, o, own)
}

func (mt *mounter) cgroupV1(dest string, o mountOptions, own bool) error {
	hiers := mt.cgroupMounts
	if hiers == nil {
		var err error
		if hiers, err = CgroupMounts(); err != nil {
			return fmt.Errorf("mount cgroup on %s: %w", dest, err)
		}
	}
	paths, err := procCgroups()
	if err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", dest, err)
	}
	tmpfs := mountOptions{
		flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC,
		data:  []string{"mode=755"},
	}
	if err := mt.fs("tmpfs", dest, "tmpfs", tmpfs); err != nil {
		return err
	}
	for _, h := range hiers {
		sub := path.Join(dest, path.Base(h.MountPoint))
		if own {
			typ, data := "cgroup", h.Controllers
			if h.FSType == "cgroup2" {
				typ, data = "cgroup2", nil
			}
			err = mt.fs(typ, sub, typ, mountOptions{flags: o.flags, data: data})
		} else {
			var src string
			if src, err = ownPath(h, paths); err == nil {
				err = mt.bind(src, sub, mountOptions{flags: o.flags | unix.MS_BIND})
			}
		}
		if err != nil {
			return fmt.Errorf("mount cgroup hierarchy %s on %s: %w", h.MountPoint, sub, err)
		}
	}
	if o.flags&unix.MS_RDONLY != 0 {
		mt.roLater = append(mt.roLater, dest)
	}
	return nil
}

// ownPath returns the host path of this process's cgroup in h.
func ownPath(h initmsg.CgroupMount, paths map[string]string) (string, error) {
	key := strings.Join(h.Controllers, ",")
	p, ok := paths[key]
	if !ok {
		return "", fmt.Errorf("no cgroup of this process in hierarchy %q", key)
	}
	rel := p
	if h.Root != "/" {
		if p != h.Root && !strings.HasPrefix(p, h.Root+"/") {
			return "", fmt.Errorf("cgroup %s is outside the mount's root %s", p, h.Root)
		}
		rel = strings.TrimPrefix(p, h.Root)
	}
	return path.Join(h.MountPoint, rel), nil
}

// CgroupMounts lists the cgroup mounts directly under /sys/fs/cgroup, from
// /proc/self/mountinfo: what a container's cgroup v1 view is made of.
func CgroupMounts() ([]initmsg.CgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return CgroupMountsFrom(f)
}

// CgroupMountsFrom is CgroupMounts from mountinfo lines read by the
// caller: a shim lists them once, from the read it shares with its other
// parsers, and hands them to every init (Config.CgroupMounts).
func CgroupMountsFrom(r io.Reader) ([]initmsg.CgroupMount, error) {
	out := []initmsg.CgroupMount{}
	seen := map[string]bool{}
	err := mountinfo.Scan(r, []string{"cgroup", "cgroup2"}, func(m mountinfo.Mount) bool {
		if path.Dir(m.Mountpoint) != hostCgroupRoot {
			return true
		}
		h := initmsg.CgroupMount{MountPoint: m.Mountpoint, Root: m.Root, FSType: m.FSType}
		if m.FSType == "cgroup" {
			for _, opt := range strings.Split(m.SuperOptions, ",") {
				if opt == "rw" || opt == "ro" || (strings.Contains(opt, "=") && !strings.HasPrefix(opt, "name=")) {
					continue
				}
				if opt == "xattr" || opt == "noprefix" || opt == "clone_children" || opt == "cpuset_v2_mode" {
					continue
				}
				h.Controllers = append(h.Controllers, opt)
			}
			sort.Strings(h.Controllers)
		}
		if !seen[h.MountPoint] { // the last mount on a path wins; keep one
			seen[h.MountPoint] = true
			out = append(out, h)
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("list cgroup mounts: %w", err)
	}
	return out, nil
}

// procCgroups reads /proc/self/cgroup into a map from the sorted controller
// list (v1; "" for the v2 unified hierarchy) to the cgroup path.
func procCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls := strings.Split(parts[1], ",")
		sort.Strings(ctrls)
		out[strings.Join(ctrls, ",")] = parts[2]
	}
	return out, sc.Err()
}

// scanOwnMounts calls fn with each mount of this process's mountinfo whose
// type is one of types (nil: every mount), until fn returns false.
func scanOwnMounts(types []string, fn func(mountinfo.Mount) bool) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	return mountinfo.Scan(f, types, fn)
}
