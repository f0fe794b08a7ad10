package spec

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/internal/sysctl"
)

// Masked and read-only paths of an unprivileged container: containerd's
// defaults, which are also kubelet's for procMount: Default.
var (
	defaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap",
		"/proc/scsi",
	}
	defaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// RootRDTClass is the RDT class naming the resctrl root group (goresctrl's
// and crib's rdt.RootClass); the runtime spec names that group "/".
const RootRDTClass = "system/default"

// linux fills the Linux section beyond namespaces: resources, devices,
// masked and read-only paths, sysctls and the RDT class.
func linux(in Input, ns nsModes, l *specs.Linux) error {
	sc := in.Config.GetLinux().GetSecurityContext()
	res, err := Resources(in.Config.GetLinux().GetResources())
	if err != nil {
		return err
	}
	l.Resources = res
	if err := devices(in, l); err != nil {
		return err
	}
	if !sc.GetPrivileged() {
		// Kubelet always sends the lists for procMount: Default; other CRI
		// clients (crictl) usually send none and get the defaults. Kubelet's
		// procMount: Unmasked sends empty lists, which protobuf cannot tell
		// from absent, so it gets the defaults too: a known limitation until
		// crib supports user namespaces, which Unmasked requires anyway.
		l.MaskedPaths = slices.Clone(defaultMaskedPaths)
		if p := sc.GetMaskedPaths(); len(p) > 0 {
			l.MaskedPaths = slices.Clone(p)
		}
		l.ReadonlyPaths = slices.Clone(defaultReadonlyPaths)
		if p := sc.GetReadonlyPaths(); len(p) > 0 {
			l.ReadonlyPaths = slices.Clone(p)
		}
	}
	if l.Sysctl, err = sysctl.Validate(in.Sandbox.GetLinux().GetSysctls(), ns.net == modeNode, ns.ipc == modeNode); err != nil {
		return err
	}
	if in.RDTClass != "" {
		clos := in.RDTClass
		if clos == RootRDTClass {
			clos = "/" // runtime-spec: "/" is the root CLOS (runtime-spec#1289)
		}
		l.IntelRdt = &specs.LinuxIntelRdt{ClosID: clos}
	}
	return nil
}

// Resources translates CRI resources as containerd does: zero means "not
// set", and memory+swap equals the memory limit unless kubelet sets it
// (MemorySwapLimitInBytes), so a container does not swap by default.
func Resources(r *criapi.LinuxContainerResources) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	if r.GetCpuPeriod() < 0 || r.GetCpuShares() < 0 || r.GetMemoryLimitInBytes() < 0 || r.GetMemorySwapLimitInBytes() < 0 {
		return nil, invalidf("negative cpu period, cpu shares, memory or swap limit")
	}
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if v := uint64(r.GetCpuPeriod()); v != 0 {
		cpu.Period = &v
	}
	if v := r.GetCpuQuota(); v != 0 {
		cpu.Quota = &v
	}
	if v := uint64(r.GetCpuShares()); v != 0 {
		cpu.Shares = &v
	}
	if *cpu != (specs.LinuxCPU{}) {
		out.CPU = cpu
	}
	if limit := r.GetMemoryLimitInBytes(); limit != 0 {
		swap := limit
		if s := r.GetMemorySwapLimitInBytes(); s != 0 {
			swap = s
		}
		out.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	} else if s := r.GetMemorySwapLimitInBytes(); s != 0 {
		out.Memory = &specs.LinuxMemory{Swap: &s}
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if len(r.GetUnified()) > 0 {
		out.Unified = maps.Clone(r.GetUnified())
	}
	return out, nil
}

// defaultDeviceRules deny every device and then allow the ones every
// container needs: runc's built-in allow list (libcontainer/specconv
// AllowedDevices), written out because crib's runtime reads only the spec.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	rule := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			r.Major = &major
		}
		if minor >= 0 {
			r.Minor = &minor
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", -1, -1, "m"), // mknod of any device; opening still needs a rule
		rule("b", -1, -1, "m"),
		rule("c", 1, 3, "rwm"),    // /dev/null
		rule("c", 1, 8, "rwm"),    // /dev/random
		rule("c", 1, 7, "rwm"),    // /dev/full
		rule("c", 5, 0, "rwm"),    // /dev/tty
		rule("c", 1, 5, "rwm"),    // /dev/zero
		rule("c", 1, 9, "rwm"),    // /dev/urandom
		rule("c", 136, -1, "rwm"), // /dev/pts/*
		rule("c", 5, 2, "rwm"),    // /dev/ptmx
		rule("c", 10, 200, "rwm"), // /dev/net/tun
	}
}

// devices adds the CRI devices (and, for privileged containers, the host's)
// with their cgroup rules. A privileged container's cgroup allows every
// device (CRI: "The device cgroup does not restrict access to any devices").
func devices(in Input, l *specs.Linux) error {
	privileged := in.Config.GetLinux().GetSecurityContext().GetPrivileged()
	l.Resources.Devices = defaultDeviceRules()
	if privileged {
		l.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for _, d := range in.Config.GetDevices() {
		dev, err := device(in, d)
		if err != nil {
			return err
		}
		l.Devices = append(l.Devices, dev)
		if !privileged {
			major, minor := dev.Major, dev.Minor
			l.Resources.Devices = append(l.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: permissions(d),
			})
		}
	}
	if privileged && in.HostDevices != nil {
		host, err := in.HostDevices()
		if err != nil {
			return fmt.Errorf("list host devices: %w", err)
		}
		for _, h := range host {
			if !slices.ContainsFunc(l.Devices, func(d specs.LinuxDevice) bool { return d.Path == h.Path }) {
				l.Devices = append(l.Devices, h)
			}
		}
	}
	return nil
}

func permissions(d *criapi.Device) string {
	if d.GetPermissions() == "" {
		return "rwm"
	}
	return d.GetPermissions()
}

// device translates one CRI device. A directory of devices (which CRI-O
// walks) is refused for now: device plugins name device nodes.
func device(in Input, d *criapi.Device) (specs.LinuxDevice, error) {
	src, dst := d.GetHostPath(), d.GetContainerPath()
	if dst == "" {
		dst = src
	}
	if !path.IsAbs(src) {
		return specs.LinuxDevice{}, invalidf("device %q: host path %q must be absolute", dst, src)
	}
	if !path.IsAbs(dst) {
		return specs.LinuxDevice{}, invalidf("device %q: container path must be absolute", dst)
	}
	if strings.Trim(permissions(d), "rwm") != "" {
		return specs.LinuxDevice{}, invalidf("device %q: permissions %q are not a subset of \"rwm\"", dst, d.GetPermissions())
	}
	f, err := stat(in, src)
	if err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("device %q: %w", dst, err)
	}
	if f.Type != 'c' && f.Type != 'b' {
		return specs.LinuxDevice{}, invalidf("device %q: host path %q is not a character or block device", dst, src)
	}
	mode := f.Mode.Perm()
	uid, gid := f.UID, f.GID
	return specs.LinuxDevice{
		Path: path.Clean(dst), Type: string(f.Type), Major: f.Major, Minor: f.Minor,
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}
