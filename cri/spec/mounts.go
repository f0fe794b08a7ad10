package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container paths of the mounts crib adds itself.
const (
	etcHostname = "/etc/hostname"
	etcHosts    = "/etc/hosts"
	resolvConf  = "/etc/resolv.conf"
	devShm      = "/dev/shm"
)

// defaultMounts are the file systems every container gets: containerd's
// defaults less /run (its CRI plugin drops it, WithoutRunMount), plus the
// cgroup file system. /dev/shm is added by podMounts. Privileged containers
// get sysfs and cgroupfs read-write (CRI: "Any sysfs and procfs mounts are
// mounted RW").
func defaultMounts(privileged bool) []specs.Mount {
	ro := "ro"
	if privileged {
		ro = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", ro}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", ro}},
	}
}

// podMounts are the pod's files bind-mounted into the container. As in
// containerd, /etc/hostname, /etc/hosts and /etc/resolv.conf follow the
// container's readonly_rootfs (kubelet rewrites none of them through the
// container), and /dev/shm is always writable.
func podMounts(in Input, ns nsModes) []specs.Mount {
	ro := in.Config.GetLinux().GetSecurityContext().GetReadonlyRootfs()
	var out []specs.Mount
	for _, f := range []struct{ dst, src string }{
		{etcHostname, in.HostnamePath},
		{etcHosts, in.HostsPath},
		{resolvConf, in.ResolvPath},
	} {
		if f.src != "" {
			out = append(out, bindMount(f.src, f.dst, "rprivate", ro))
		}
	}
	switch {
	case ns.ipc == modeNode:
		// The host's IPC namespace comes with the host's POSIX shared
		// memory, which lives in its /dev/shm (containerd does the same).
		out = append(out, bindMount(devShm, devShm, "rprivate", false))
	case ns.ipc == modePod && in.ShmPath != "":
		out = append(out, bindMount(in.ShmPath, devShm, "rprivate", false))
	default:
		out = append(out, specs.Mount{Destination: devShm, Type: "tmpfs", Source: "shm",
			Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}})
	}
	return out
}

func bindMount(src, dst, propagation string, readonly bool) specs.Mount {
	rw := "rw"
	if readonly {
		rw = "ro"
	}
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", propagation, rw}}
}

// mounts returns every mount of the container, parents before children,
// and the rootfs propagation the CRI mounts need.
func mounts(in Input, ns nsModes) ([]specs.Mount, string, error) {
	cri, rootProp, err := criMounts(in)
	if err != nil {
		return nil, "", err
	}
	taken := make(map[string]bool, len(cri))
	for _, m := range cri {
		taken[m.Destination] = true
	}
	var out []specs.Mount
	privileged := in.Config.GetLinux().GetSecurityContext().GetPrivileged()
	for _, m := range append(defaultMounts(privileged), podMounts(in, ns)...) {
		// A CRI mount replaces a default at the same place, and a CRI /dev
		// replaces everything crib would have put under /dev.
		if taken[m.Destination] || (taken["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		out = append(out, m)
	}
	out = append(out, cri...)
	// Mount order is what makes a child visible: a mount made before its
	// parent is hidden by it. Sorting by depth (stable, so equal depths keep
	// their order) puts every parent first, the order Docker and containerd
	// use for CRI mounts, here applied to the defaults too so a CRI /sys
	// cannot hide the default /sys/fs/cgroup.
	sort.SliceStable(out, func(i, j int) bool { return depth(out[i].Destination) < depth(out[j].Destination) })
	return out, rootProp, nil
}

// depth is the number of components of a clean absolute path ("/" is 0).
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// allowedMountOptions are the CRI mount_options crib passes on: flags that
// only take privileges away or change access-time bookkeeping.
var allowedMountOptions = []string{"nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime"}

// criMounts translates Config.Mounts into bind mounts.
func criMounts(in Input) ([]specs.Mount, string, error) {
	var (
		out      []specs.Mount
		rootProp string
		seen     = make(map[string]bool)
	)
	for _, m := range in.Config.GetMounts() {
		dst := m.GetContainerPath()
		if !path.IsAbs(dst) {
			return nil, "", invalidf("mount %q: container path must be absolute", dst)
		}
		dst = path.Clean(dst)
		if seen[dst] {
			return nil, "", invalidf("mount %q: container path mounted twice", dst)
		}
		seen[dst] = true
		if m.GetImage() != nil {
			im, err := imageMount(in, m, dst)
			if err != nil {
				return nil, "", err
			}
			out = append(out, im)
			continue
		}
		if err := checkMount(in, m); err != nil {
			return nil, "", err
		}
		prop, err := propagation(m.GetPropagation())
		if err != nil {
			return nil, "", fmt.Errorf("mount %q: %w", dst, err)
		}
		if prop == "rshared" && !in.Config.GetLinux().GetSecurityContext().GetPrivileged() {
			// A shared mount lets the container's mounts reach the host's
			// namespace; the kubelet allows Bidirectional only for
			// privileged containers, and containerd and CRI-O refuse it
			// otherwise too.
			return nil, "", invalidf("mount %q: Bidirectional propagation needs a privileged container", dst)
		}
		// Bidirectional needs the rootfs shared, host-to-container at least
		// slave, or the kernel refuses to propagate into the bind.
		switch {
		case prop == "rshared":
			rootProp = "rshared"
		case prop == "rslave" && rootProp != "rshared":
			rootProp = "rslave"
		}
		bm := bindMount(m.GetHostPath(), dst, prop, m.GetReadonly())
		if len(m.GetUidMappings()) > 0 {
			// runtime makes the idmapped bind (with the pod's user
			// namespace) and hands the init that instead.
			bm.UIDMappings, bm.GIDMappings = idMappings(m.GetUidMappings()), idMappings(m.GetGidMappings())
		}
		if m.GetRecursiveReadOnly() {
			// runtime-spec 1.2's "rro": the init applies it with
			// mount_setattr(AT_RECURSIVE) after the rbind.
			bm.Options = append(bm.Options, "rro")
		}
		for _, o := range m.GetMountOptions() {
			if !slices.Contains(allowedMountOptions, o) {
				return nil, "", invalidf("mount %q: mount option %q is not supported", dst, o)
			}
			bm.Options = append(bm.Options, o)
		}
		out = append(out, bm)
	}
	return out, rootProp, nil
}

// checkMount refuses what crib cannot mount (yet) and host paths that are
// relative or missing. The host path is mounted as given: bind mounts
// follow a symlink in the source, which is what CRI asks for. selinux_relabel
// is ignored: crib runs without SELinux.
func checkMount(in Input, m *criapi.Mount) error {
	dst := m.GetContainerPath()
	// Each check on its own: a mount may be recursive read-only and carry
	// the pod's id mappings at once.
	if m.GetImageSubPath() != "" {
		return invalidf("mount %q: image_sub_path without image", dst)
	}
	if m.GetRecursiveReadOnly() {
		if err := checkRecursiveReadOnly(in, m); err != nil {
			return err
		}
	}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		if err := checkMountIDMap(in, m); err != nil {
			return err
		}
	}
	src := m.GetHostPath()
	if !path.IsAbs(src) {
		return invalidf("mount %q: host path %q must be absolute", dst, src)
	}
	// containerd creates a missing host directory; CRI says the runtime
	// "should report an error" and kubelet creates what it means to mount,
	// so a missing path is a caller mistake worth surfacing.
	if _, err := stat(in, src); err != nil {
		return fmt.Errorf("mount %q: %w", dst, err)
	}
	return nil
}

// stat calls in.Stat, classifying a missing path as InvalidArgument.
func stat(in Input, p string) (HostFile, error) {
	if in.Stat == nil {
		return HostFile{}, fmt.Errorf("host path %q: no Stat function given", p)
	}
	f, err := in.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return HostFile{}, invalidf("host path %q does not exist", p)
	}
	if err != nil {
		return HostFile{}, fmt.Errorf("host path %q: %w", p, err)
	}
	return f, nil
}

// propagation maps CRI's propagation to the OCI option.
func propagation(p criapi.MountPropagation) (string, error) {
	switch p {
	case criapi.MountPropagation_PROPAGATION_PRIVATE:
		return "rprivate", nil
	case criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return "rslave", nil
	case criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return "rshared", nil
	}
	return "", invalidf("unknown mount propagation %d", p)
}
