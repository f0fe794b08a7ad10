package initproc

import (
	"fmt"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/sysctl"
)

// setHostname sets the hostname and domainname. Both belong to the UTS
// namespace, so a spec that asks for one without its own (new or pod's)
// UTS namespace would rename the host: refuse it.
func setHostname(spec *specs.Spec) error {
	set := []struct {
		name, value string
		fn          func([]byte) error
	}{
		{"hostname", spec.Hostname, unix.Sethostname},
		{"domainname", spec.Domainname, unix.Setdomainname},
	}
	for _, s := range set {
		if s.value == "" {
			continue
		}
		if !hasNamespace(spec, specs.UTSNamespace) {
			return fail(stepHostname, "", fmt.Errorf("set %s %q: the container has no uts namespace", s.name, s.value))
		}
		if err := s.fn([]byte(s.value)); err != nil {
			return fail(stepHostname, "", fmt.Errorf("set %s %q: %w", s.name, s.value, err))
		}
	}
	return nil
}

// sysctlNamespace returns the namespace a sysctl belongs to, or "" when it
// is global to the host: the kubelet's rules (internal/sysctl), the same
// the daemon checked the pod's sysctls against, plus the UTS names.
func sysctlNamespace(name string) specs.LinuxNamespaceType {
	switch sysctl.NamespaceOf(name) {
	case sysctl.IPC:
		return specs.IPCNamespace
	case sysctl.Net:
		return specs.NetworkNamespace
	}
	if name == "kernel.hostname" || name == "kernel.domainname" {
		return specs.UTSNamespace
	}
	return ""
}

// writeSysctls writes the spec's sysctls under the container's /proc/sys.
// Only namespaced ones are accepted, and only when the container has that
// namespace: /proc/sys/net of a container in the host's net namespace is the
// host's. The file is opened without following any symlink and must be on
// procfs, so a rootfs cannot redirect the write.
func writeSysctls(spec *specs.Spec) error {
	names := make([]string, 0, len(spec.Linux.Sysctl))
	for k := range spec.Linux.Sysctl {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		p, err := sysctl.Path(name)
		if err == nil {
			err = writeSysctl(spec, name, p, spec.Linux.Sysctl[name])
		}
		if err != nil {
			return fail(stepSysctl, p, fmt.Errorf("sysctl %s: %w", name, err))
		}
	}
	return nil
}

func writeSysctl(spec *specs.Spec, name, p, value string) error {
	ns := sysctlNamespace(name)
	if ns == "" {
		return fmt.Errorf("not a namespaced sysctl")
	}
	if !hasNamespace(spec, ns) {
		return fmt.Errorf("the container has no %s namespace", ns)
	}
	how := unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CLOEXEC | unix.O_TRUNC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &how)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return err
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not on procfs", p)
	}
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("write %q: %w", value, err)
	}
	return nil
}
