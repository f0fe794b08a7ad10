package cgroups

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceType is the kind of device a DeviceRule names, as the device cgroup
// spells it.
type DeviceType byte

// The device types: every device, character devices, block devices.
const (
	DeviceAll   DeviceType = 'a'
	DeviceChar  DeviceType = 'c'
	DeviceBlock DeviceType = 'b'
)

// AnyDevice is a DeviceRule major or minor that matches every number ("*").
const AnyDevice int64 = -1

// Kernel bounds of device numbers (include/linux/kdev_t.h: 12 bits of major,
// 20 of minor).
const (
	maxDeviceMajor = 1<<12 - 1
	maxDeviceMinor = 1<<20 - 1
)

// DeviceRule is one rule of the device cgroup: whether it allows or denies
// Access ("r" read, "w" write, "m" mknod, any combination) to the devices of
// Type with number Major:Minor (AnyDevice for "*").
type DeviceRule struct {
	Allow  bool
	Type   DeviceType
	Major  int64
	Minor  int64
	Access string
}

// String is the rule as devices.allow, devices.deny and devices.list spell
// it ("c 1:3 rwm", "a *:* rwm").
func (d DeviceRule) String() string {
	num := func(n int64) string {
		if n == AnyDevice {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", d.Type, num(d.Major), num(d.Minor), d.Access)
}

// everything reports whether d names every device with every access: the
// rule that sets the default of a device cgroup.
func (d DeviceRule) everything() bool {
	return d.Type == DeviceAll && d.Major == AnyDevice && d.Minor == AnyDevice && d.Access == "rwm"
}

func (d DeviceRule) validate(i int) error {
	what := func() string { return fmt.Sprintf("device rule %d (%s)", i, d) }
	switch d.Type {
	case DeviceAll:
		// The v1 kernel reads "a" alone and ignores the rest of the
		// line: a narrower "a" rule would silently mean everything.
		if !d.everything() {
			return Invalidf("%s: type a must name every device (a *:* rwm)", what())
		}
	case DeviceChar, DeviceBlock:
	default:
		return Invalidf("%s: type %q: want a, c or b", what(), string(d.Type))
	}
	if d.Major != AnyDevice && (d.Major < 0 || d.Major > maxDeviceMajor) {
		return Invalidf("%s: major %d: want * or 0..%d", what(), d.Major, maxDeviceMajor)
	}
	if d.Minor != AnyDevice && (d.Minor < 0 || d.Minor > maxDeviceMinor) {
		return Invalidf("%s: minor %d: want * or 0..%d", what(), d.Minor, maxDeviceMinor)
	}
	if d.Access == "" {
		return Invalidf("%s: no access: want a combination of r, w and m", what())
	}
	if d.Access != canonicalAccess(d.Access) {
		return Invalidf("%s: access %q: want r, w and m each at most once, in that order", what(), d.Access)
	}
	return nil
}

// canonicalAccess returns the letters of access that are r, w or m, once
// each and in the order rwm, as devices.list shows them.
func canonicalAccess(access string) string {
	var b strings.Builder
	for _, c := range "rwm" {
		if strings.ContainsRune(access, c) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// DeviceAccess returns access in the form DeviceRule wants: "" (the OCI
// spec's and the CRI's "not given") is every access, and the letters are put
// in the order rwm. Letters other than r, w and m are kept, for Validate to
// refuse.
func DeviceAccess(access string) string {
	if access == "" {
		return "rwm"
	}
	if strings.Trim(access, "rwm") != "" {
		return access
	}
	return canonicalAccess(access)
}

// DeviceSet is a device cgroup in the shape both hierarchies express
// without ambiguity: a default for every device and exceptions to it, each
// the opposite of the default. The v1 kernel keeps exactly this (an allow
// or deny default and an exception list), and the v2 program crib generates
// checks exactly this.
type DeviceSet struct {
	// DefaultAllow is whether a device no exception names is allowed.
	DefaultAllow bool
	// Exceptions deny (DefaultAllow) or allow (!DefaultAllow) what they
	// name. Rules naming the same type and numbers are merged into one,
	// as the v1 kernel merges them.
	Exceptions []DeviceRule
}

// NewDeviceSet reduces rules, read in order, to a DeviceSet. The last "a *:* rwm"
// rule sets the default (deny when there is none: a rule list is an allow
// list, as in runc) and discards the rules before it; every rule after it
// be the opposite of the default. A rule with the same effect as the default
// says nothing before the first exception and is dropped; after one it would
// punch a hole in it, which "last match wins" in a program does but the v1
// kernel does not (it only removes equal exceptions), so it is refused
// rather than applied differently on the two hierarchies.
func NewDeviceSet(rules []DeviceRule) (DeviceSet, error) {
	var set DeviceSet
	start := 0
	for i, d := range rules {
		if err := d.validate(i); err != nil {
			return DeviceSet{}, err
		}
		if d.Type == DeviceAll {
			set.DefaultAllow, start = d.Allow, i+1
		}
	}
	for i, d := range rules[start:] {
		if d.Allow == set.DefaultAllow {
			if len(set.Exceptions) == 0 {
				continue
			}
			return DeviceSet{}, Invalidf("device rule %d (%s) %s like the default, after an exception that %s: "+
				"crib takes a default and exceptions to it, not a rule that punches a hole in an exception",
				start+i, d, verb(d.Allow), verb(!d.Allow))
		}
		merged := false
		for j, e := range set.Exceptions {
			if e.Type == d.Type && e.Major == d.Major && e.Minor == d.Minor {
				set.Exceptions[j].Access = canonicalAccess(e.Access + d.Access)
				merged = true
			}
		}
		if !merged {
			set.Exceptions = append(set.Exceptions, d)
		}
	}
	return set, nil
}

func verb(allow bool) string {
	if allow {
		return "allows"
	}
	return "denies"
}

// AllowAllDevices is the rule list of a cgroup that restricts no device
// (a privileged container's).
func AllowAllDevices() []DeviceRule {
	return []DeviceRule{{Allow: true, Type: DeviceAll, Major: AnyDevice, Minor: AnyDevice, Access: "rwm"}}
}
