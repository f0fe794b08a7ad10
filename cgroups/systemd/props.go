package systemd

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/cgroup2"
)

// infinity is systemd's USEC_INFINITY and CGROUP_LIMIT_MAX: no limit.
const infinity = uint64(math.MaxUint64)

// defaultPeriodMicros is the kernel's default CFS period, which a quota
// without a period is measured against (sched-bwc.rst).
const defaultPeriodMicros = 100000

// Versions of systemd that introduced the properties crib sets only where
// systemd knows them: an unknown property fails the whole StartTransientUnit.
const (
	versionQuotaPeriod = 242 // CPUQuotaPeriodUSec
	versionOOMPolicy   = 243 // OOMPolicy
	versionAllowedCPUs = 244 // AllowedCPUs, AllowedMemoryNodes
	versionDeviceMajor = 240 // DeviceAllow=char-<major>, /dev/char/M:m without a node
)

func prop(name string, v any) sd.Property { return sd.Property{Name: name, Value: dbus.MakeVariant(v)} }

// scopeProperties are a new scope's: in slice, holding pid, delegated (so
// systemd leaves the cgroup's inside, and crib's writes, alone), outside
// the default dependencies (so that a shutdown ordering does not stop it
// before the kubelet does), with accounting on (the controllers enabled on
// the way down from the root), and r as systemd spells it.
func scopeProperties(scope, slice string, pid int, r *cgroups.Resources, v2 bool, version int) ([]sd.Property, error) {
	props := []sd.Property{
		sd.PropDescription("crib " + scope),
		sd.PropSlice(slice),
		prop("Delegate", true),
		prop("PIDs", []uint32{uint32(pid)}),
		prop("DefaultDependencies", false),
		prop("MemoryAccounting", true),
		prop("CPUAccounting", true),
		prop("TasksAccounting", true),
	}
	if v2 {
		props = append(props, prop("IOAccounting", true))
	} else {
		props = append(props, prop("BlockIOAccounting", true))
	}
	if v2 && version >= versionOOMPolicy {
		// systemd's default for a scope (DefaultOOMPolicy=stop) stops
		// the whole unit when the kernel kills one process in it: a
		// container whose child was OOM-killed would die entirely. The
		// kubelet's single-process OOM kill, and memory.oom.group when
		// it asks for the group, are the kernel's to do.
		policy := "continue"
		if r != nil && r.Unified["memory.oom.group"] == "1" {
			policy = "kill"
		}
		props = append(props, prop("OOMPolicy", policy))
	}
	res, err := resourceProperties(r, v2, version)
	if err != nil {
		return nil, err
	}
	return append(props, res...), nil
}

// resourceProperties spells r as the unit properties systemd writes to
// the same cgroup files (systemd.resource-control(5)), so that when systemd
// writes them again (a daemon-reload, SetUnitProperties) it writes crib's
// values, not its defaults. What systemd has no property for (memory+swap
// on v1, hugetlb, throttles, most unified keys) crib alone writes.
func resourceProperties(r *cgroups.Resources, v2 bool, version int) ([]sd.Property, error) {
	if r == nil {
		return nil, nil
	}
	var props []sd.Property
	if w := r.CPUWeight; w != nil {
		if v2 {
			props = append(props, prop("CPUWeight", *w))
		} else {
			props = append(props, prop("CPUShares", cgroups.WeightToShares(*w)))
		}
	}
	if c := r.CPUMax; c != nil {
		props = append(props, quotaProperties(*c, version)...)
	}
	if m := r.MemoryMaxBytes; m != nil {
		name := "MemoryLimit"
		if v2 {
			name = "MemoryMax"
		}
		props = append(props, prop(name, limit(*m)))
	}
	if s := r.MemorySwapMaxBytes; s != nil && v2 {
		props = append(props, prop("MemorySwapMax", limit(*s)))
	}
	if p := r.PidsMax; p != nil {
		props = append(props, prop("TasksMax", limit(*p)))
	}
	if v2 && version >= versionAllowedCPUs {
		for _, c := range []struct{ name, list string }{{"AllowedCPUs", r.CpusetCPUs}, {"AllowedMemoryNodes", r.CpusetMems}} {
			if c.list == "" {
				continue
			}
			bits, err := cpuBits(c.list)
			if err != nil {
				return nil, err
			}
			props = append(props, prop(c.name, bits))
		}
	}
	if b := r.BlockIO; b != nil && b.Weight != 0 {
		if v2 {
			props = append(props, prop("IOWeight", cgroup2.IOWeight(b.Weight)))
		} else {
			props = append(props, prop("BlockIOWeight", uint64(b.Weight)))
		}
	}
	if v2 {
		unified, err := unifiedProperties(r.Unified)
		if err != nil {
			return nil, err
		}
		props = append(props, unified...)
	}
	if r.Devices != nil {
		dev, err := deviceProperties(r.Devices, version)
		if err != nil {
			return nil, err
		}
		props = append(props, dev...)
	}
	return props, nil
}

// quotaProperties spell a CFS quota as systemd's CPU time per second of
// wall time. systemd keeps it as a whole percentage of a CPU, so it is
// rounded up to 10 ms per second, as runc does: the cgroup's own quota,
// which crib writes after systemd, is then never above what systemd
// would allow its parent to hand out.
func quotaProperties(c cgroups.CPUMax, version int) []sd.Property {
	var props []sd.Property
	period := c.PeriodMicros
	if period != 0 && version >= versionQuotaPeriod {
		props = append(props, prop("CPUQuotaPeriodUSec", period))
	}
	if period == 0 {
		period = defaultPeriodMicros
	}
	perSec := infinity
	if c.QuotaMicros != cgroups.Max {
		perSec = uint64(c.QuotaMicros) * 1000000 / period
		if perSec%10000 != 0 {
			perSec = (perSec/10000 + 1) * 10000
		}
	}
	return append(props, prop("CPUQuotaPerSecUSec", perSec))
}

// unifiedFiles maps the v2 files a Resources.Unified key may set that
// systemd has a property for.
var unifiedFiles = map[string]string{
	"memory.min": "MemoryMin", "memory.low": "MemoryLow", "memory.high": "MemoryHigh",
	"memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax",
	"pids.max": "TasksMax", "cpu.weight": "CPUWeight",
}

// unifiedProperties spells the unified keys systemd has a property for.
// Each value is parsed as the kernel parses that file: one the kernel
// takes and crib passed over (memory.high "1G") would be written over
// with systemd's default, max, at its next daemon-reload, since the scope
// has that accounting on. A value the kernel would refuse is
// InvalidArgument naming the key, before systemd hears of any.
func unifiedProperties(unified map[string]string) ([]sd.Property, error) {
	var props []sd.Property
	for _, k := range slices.Sorted(maps.Keys(unified)) {
		name, ok := unifiedFiles[k]
		if !ok {
			continue
		}
		n, err := unifiedValue(k, unified[k])
		if err != nil {
			return nil, cgroups.Invalidf("unified %s = %q: %v", k, unified[k], err)
		}
		props = append(props, prop(name, n))
	}
	return props, nil
}

// unifiedValue parses v as the kernel parses cgroup file k (cgroup-v2.rst):
// the memory files' page_counter_memparse ("max", or memparse: a number
// in C's bases, 0x hex and 0 octal, with an optional K, M, G, T, P or E
// suffix of powers of 1024), pids.max's "max" or integer, cpu.weight's
// integer in 1-10000. Surrounding white space is stripped, as the kernel
// strips it.
func unifiedValue(k, v string) (uint64, error) {
	v = strings.TrimSpace(v)
	if v == "max" && k != "cpu.weight" {
		return infinity, nil
	}
	if strings.HasPrefix(k, "memory.") {
		return memparse(v)
	}
	n, err := cInteger(strings.TrimPrefix(v, "+"))
	if err != nil {
		return 0, err
	}
	if k == "cpu.weight" && (n < 1 || n > 10000) {
		return 0, fmt.Errorf("weight %d is outside 1-10000", n)
	}
	return n, nil
}

// memparse is the kernel's memparse, for a whole string.
func memparse(v string) (uint64, error) {
	shift := 0
	if v != "" {
		if i := strings.IndexByte("KMGTPE", v[len(v)-1]&^0x20); i >= 0 {
			shift, v = 10*(i+1), v[:len(v)-1]
		}
	}
	n, err := cInteger(v)
	if err != nil {
		return 0, err
	}
	if n > math.MaxUint64>>shift {
		return 0, fmt.Errorf("%w: more than 2^64 bytes", strconv.ErrRange)
	}
	return n << shift, nil
}

// cInteger parses an unsigned integer as the kernel's base 0 does: 0x
// hex, a leading 0 octal, else decimal; no sign, no separators.
func cInteger(v string) (uint64, error) {
	base := 10
	switch {
	case len(v) > 2 && (v[:2] == "0x" || v[:2] == "0X"):
		base, v = 16, v[2:]
	case len(v) > 1 && v[0] == '0':
		base, v = 8, v[1:]
	}
	n, err := strconv.ParseUint(v, base, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number the kernel takes: %w", err)
	}
	return n, nil
}

func limit(v int64) uint64 {
	if v == cgroups.Max || v < 0 {
		return infinity
	}
	return uint64(v)
}

// cpuBits turns a cpuset list ("0-3,6") into systemd's CPU mask: byte i
// bit j is CPU 8i+j.
func cpuBits(list string) ([]byte, error) {
	var bits []byte
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.ParseUint(lo, 10, 16)
		last := first
		if err == nil && isRange {
			last, err = strconv.ParseUint(hi, 10, 16)
		}
		if err != nil || last < first {
			return nil, cgroups.Invalidf("cpuset %q: want a list such as 0-3,6", list)
		}
		for cpu := first; cpu <= last; cpu++ {
			for uint64(len(bits)) <= cpu/8 {
				bits = append(bits, 0)
			}
			bits[cpu/8] |= 1 << (cpu % 8)
		}
	}
	return bits, nil
}

// deviceAllow is DeviceAllow's D-Bus element, (ss): a device and access.
type deviceAllow struct {
	Path  string
	Perms string
}

// deviceProperties spell the device rules as systemd's DevicePolicy and
// DeviceAllow, which systemd writes itself when it realizes the unit (on
// v1, with no policy, "a" into devices.allow: every device). An empty
// DeviceAllow first clears what the unit had. systemd has allow lists
// only: a default-allow set with exceptions becomes deny-all here, and
// allows it cannot name ("c *:5") are left out; systemd then allows less
// than crib, never more, and crib's own rules, written after, are the
// cgroup's.
func deviceProperties(rules []cgroups.DeviceRule, version int) ([]sd.Property, error) {
	set, err := cgroups.NewDeviceSet(rules)
	if err != nil {
		return nil, err
	}
	clear := prop("DeviceAllow", []deviceAllow{})
	if set.DefaultAllow {
		if len(set.Exceptions) == 0 {
			return []sd.Property{clear, prop("DevicePolicy", "auto")}, nil
		}
		return []sd.Property{clear, prop("DevicePolicy", "strict")}, nil
	}
	var allow []deviceAllow
	for _, d := range set.Exceptions {
		if p := devicePath(d, version); p != "" {
			allow = append(allow, deviceAllow{Path: p, Perms: d.Access})
		}
	}
	return []sd.Property{clear, prop("DevicePolicy", "strict"), prop("DeviceAllow", allow)}, nil
}

// devicePath names d's devices as DeviceAllow does: /dev/char/M:m for one
// device (parsed, not looked up, since v240), char-M for a major, char-*
// for every device of the type; "" for what it cannot name.
func devicePath(d cgroups.DeviceRule, version int) string {
	kind := "char"
	if d.Type == cgroups.DeviceBlock {
		kind = "block"
	}
	switch {
	case d.Major == cgroups.AnyDevice && d.Minor == cgroups.AnyDevice:
		return kind + "-*"
	case d.Major == cgroups.AnyDevice || version < versionDeviceMajor:
		return ""
	case d.Minor == cgroups.AnyDevice:
		return fmt.Sprintf("%s-%d", kind, d.Major)
	}
	return fmt.Sprintf("/dev/%s/%d:%d", kind, d.Major, d.Minor)
}
