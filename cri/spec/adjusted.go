package spec

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/ocihook"
	bpf "github.com/crib-runtime/crib/internal/seccomp"
	"github.com/crib-runtime/crib/internal/sysctl"
)

// AdjustedInput is what CheckAdjusted needs besides the two specs.
type AdjustedInput struct {
	// Privileged: the container is privileged (shared propagation, a
	// seccomp profile on a container that had none).
	Privileged bool
	// HostNetwork and HostIPC are the pod's (sysctl rules).
	HostNetwork, HostIPC bool
	// Stat describes host paths (new mounts' sources).
	Stat func(path string) (HostFile, error)
	// BlockIO is what the block I/O class a plugin chose resolved to
	// (nil none): the only blockIO a plugin may set.
	BlockIO *specs.LinuxBlockIO
}

// CheckAdjusted checks a spec NRI plugins adjusted (after) against the spec
// crib made (before), with the rules a CRI request meets: what crib
// cannot apply is refused with FailedPrecondition naming the field, what
// is malformed with InvalidArgument, so that nothing a plugin asked for is
// dropped silently.
func CheckAdjusted(before, after *specs.Spec, in AdjustedInput) error {
	if after.Process == nil || after.Linux == nil {
		return invalidf("adjusted spec: no process or linux section")
	}
	errs := refusedFields(before, after, in.BlockIO)
	errs = append(errs, checkAdjustedProcess(before.Process, after.Process)...)
	errs = append(errs, checkAdjustedMounts(before, after, in)...)
	errs = append(errs, checkAdjustedHooks(after)...)
	errs = append(errs, checkAdjustedDevices(before.Linux, after.Linux)...)
	if !maps.Equal(before.Linux.Sysctl, after.Linux.Sysctl) {
		if _, err := sysctl.Validate(after.Linux.Sysctl, in.HostNetwork, in.HostIPC); err != nil {
			errs = append(errs, fmt.Errorf("sysctl: %w", err))
		}
	}
	if !reflect.DeepEqual(before.Linux.Seccomp, after.Linux.Seccomp) && after.Linux.Seccomp != nil {
		errs = append(errs, checkAdjustedSeccomp(after.Linux.Seccomp))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("NRI adjustment: %w", err)
	}
	return nil
}

// refusedFields are what crib has no way to apply.
func refusedFields(before, after *specs.Spec, classBlockIO *specs.LinuxBlockIO) []error {
	var errs []error
	refuse := func(field, why string) {
		errs = append(errs, fmt.Errorf("%s: %s: %w", field, why, errdefs.ErrFailedPrecondition))
	}
	if before.Linux.CgroupsPath != after.Linux.CgroupsPath {
		refuse("linux.cgroupsPath", "a container's cgroup is crib's to place")
	}
	if !slices.Equal(before.Linux.Namespaces, after.Linux.Namespaces) {
		refuse("linux.namespaces", "a container's namespaces are its pod's")
	}
	if len(after.Linux.NetDevices) > 0 {
		refuse("linux.netDevices", "crib does not move network devices")
	}
	if after.Process.IOPriority != nil {
		refuse("process.ioPriority", "crib's init does not set I/O priorities")
	}
	if after.Process.Scheduler != nil {
		refuse("process.scheduler", "crib's init does not set scheduling policies")
	}
	if after.Linux.MemoryPolicy != nil {
		refuse("linux.memoryPolicy", "crib's init does not set memory policies")
	}
	if r := after.Linux.IntelRdt; r != nil && (len(r.Schemata) > 0 || r.L3CacheSchema != "" || r.MemBwSchema != "") {
		refuse("linux.intelRdt schemata", "crib applies RDT through configured classes only")
	}
	// NRI sets blockIO only through a class; settings that did not come
	// from the class crib resolved came from somewhere crib never checked.
	if r := after.Linux.Resources; r != nil && r.BlockIO != nil && (before.Linux.Resources == nil || !reflect.DeepEqual(r.BlockIO, before.Linux.Resources.BlockIO)) &&
		!reflect.DeepEqual(r.BlockIO, classBlockIO) {
		refuse("linux.resources.blockIO", "crib sets block I/O only from a configured block I/O class")
	}
	if r := after.Linux.Resources; r != nil && (r.Memory != nil && (r.Memory.Kernel != nil || r.Memory.KernelTCP != nil)) { //nolint:staticcheck // refusing the deprecated fields
		refuse("linux.resources.memory kernel limits", "deprecated and not applied by crib")
	}
	return errs
}

// rlimitNames are the limits crib's init sets.
var rlimitNames = []string{"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
	"RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS",
	"RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"}

func checkAdjustedProcess(before, after *specs.Process) []error {
	var errs []error
	if len(after.Args) == 0 {
		errs = append(errs, invalidf("process.args: empty"))
	}
	for _, e := range after.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			errs = append(errs, invalidf("process.env: %q is not NAME=value", e))
		}
	}
	for _, r := range after.Rlimits {
		if !slices.Contains(rlimitNames, r.Type) {
			errs = append(errs, invalidf("process.rlimits: unknown limit %q", r.Type))
		} else if r.Soft > r.Hard {
			errs = append(errs, invalidf("process.rlimits: %s soft limit %d above its hard limit %d", r.Type, r.Soft, r.Hard))
		}
	}
	if a := after.OOMScoreAdj; a != nil && (*a < -1000 || *a > 1000) {
		errs = append(errs, invalidf("process.oomScoreAdj %d out of range -1000-1000", *a))
	}
	return errs
}

// checkAdjustedMounts checks the mounts plugins added as a CRI mount is
// checked: absolute paths, an existing host source for binds, shared
// propagation only for privileged containers.
func checkAdjustedMounts(before, after *specs.Spec, in AdjustedInput) []error {
	var errs []error
	seen := map[string]bool{}
	for _, m := range after.Mounts {
		dst := path.Clean(m.Destination)
		if seen[dst] {
			errs = append(errs, invalidf("mount %q: container path mounted twice", m.Destination))
		}
		seen[dst] = true
		if slices.ContainsFunc(before.Mounts, func(b specs.Mount) bool { return reflect.DeepEqual(b, m) }) {
			continue
		}
		if !path.IsAbs(m.Destination) {
			errs = append(errs, invalidf("mount %q: container path must be absolute", m.Destination))
			continue
		}
		bind := m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
		if bind {
			if !path.IsAbs(m.Source) {
				errs = append(errs, invalidf("mount %q: host path %q must be absolute", m.Destination, m.Source))
			} else if _, err := stat(Input{Stat: in.Stat}, m.Source); err != nil {
				errs = append(errs, fmt.Errorf("mount %q: %w", m.Destination, err))
			}
		}
		if (slices.Contains(m.Options, "rshared") || slices.Contains(m.Options, "shared")) && !in.Privileged {
			errs = append(errs, invalidf("mount %q: shared propagation needs a privileged container", m.Destination))
		}
	}
	if p := after.Linux.RootfsPropagation; p != before.Linux.RootfsPropagation {
		switch {
		case p == "rshared" && !in.Privileged:
			errs = append(errs, invalidf("linux.rootfsPropagation rshared: needs a privileged container"))
		case p != "" && p != "rprivate" && p != "rslave" && p != "rshared":
			// Not recursive, the init would keep the host's peer groups
			// under the root.
			errs = append(errs, invalidf("linux.rootfsPropagation %q: want rprivate, rslave or rshared", p))
		}
	}
	return errs
}

// checkAdjustedHooks refuses at create a hook that could not run (a
// relative path, a timeout that is not positive), as the shim would later.
func checkAdjustedHooks(after *specs.Spec) []error {
	var errs []error
	for _, n := range ocihook.Each(after.Hooks) {
		if err := ocihook.Validate(n.Hook); err != nil {
			errs = append(errs, invalidf("%s: %v", n, err))
		}
	}
	return errs
}

// checkAdjustedDevices checks added device nodes: an absolute path under
// /dev, a kind the init can make.
func checkAdjustedDevices(before, after *specs.Linux) []error {
	var errs []error
	for _, d := range after.Devices {
		if slices.ContainsFunc(before.Devices, func(b specs.LinuxDevice) bool { return reflect.DeepEqual(b, d) }) {
			continue
		}
		if !strings.HasPrefix(path.Clean(d.Path), "/dev/") {
			errs = append(errs, invalidf("linux.devices %q: a device path is absolute, under /dev", d.Path))
		}
		if !slices.Contains([]string{"c", "b", "u", "p"}, d.Type) {
			errs = append(errs, invalidf("linux.devices %q: type %q is not c, b, u or p", d.Path, d.Type))
		}
	}
	return errs
}

// checkAdjustedSeccomp compiles a plugin's profile as the init will, so a
// profile the init would refuse fails the create, not the start; a
// notifying profile needs a listener crib does not run.
func checkAdjustedSeccomp(p *specs.LinuxSeccomp) error {
	if p.ListenerPath != "" || p.DefaultAction == specs.ActNotify ||
		slices.ContainsFunc(p.Syscalls, func(s specs.LinuxSyscall) bool { return s.Action == specs.ActNotify }) {
		return fmt.Errorf("linux.seccomp: notifying profiles (SCMP_ACT_NOTIFY, listenerPath) need a seccomp agent crib does not run: %w", errdefs.ErrFailedPrecondition)
	}
	if _, err := bpf.Compile(p); err != nil {
		return invalidf("linux.seccomp: %v", err)
	}
	return nil
}
