package cgroup1

import (
	"fmt"
	"slices"
	"strings"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// allDevices is how devices.list shows a cgroup whose default is allow: the
// kernel prints this line alone and none of the deny exceptions.
const allDevices = "a *:* rwm"

// setDevices makes the devices cgroup of rel hold rules. The v1 kernel
// keeps a default and a list of exceptions, and a child starts as a copy of
// its parent (under a kubelet's pod cgroup: allow all); a child can never
// allow what its parent denies (EPERM), so a container cannot get more than
// its pod. A new cgroup has no process yet, so the default goes first,
// then the exceptions, as runc writes them. On a live cgroup whose default
// stays deny, the new exceptions are added before the stale ones go, so that
// the container never loses a device both lists allow, not even for a moment
// (runc computes the same kind of transition). The result is read back from
// devices.list: what the kernel did not take is an error, not a container
// with other rules than asked for.
func setDevices(root *cgfs.Root, rel string, rules []cgroups.DeviceRule) error {
	want, err := cgroups.NewDeviceSet(rules)
	if err != nil {
		return err
	}
	cur, err := readDevices(root, rel)
	if err != nil {
		return err
	}
	if !want.DefaultAllow && !slices.Contains(cur, allDevices) {
		err = updateAllowList(root, rel, cur, want.Exceptions)
	} else {
		err = writeDevices(root, rel, want)
	}
	if err != nil {
		return err
	}
	return checkDevices(root, rel, want)
}

// writeDevices writes the default ("a" to devices.allow or devices.deny)
// and then every exception to the other file.
func writeDevices(root *cgfs.Root, rel string, want cgroups.DeviceSet) error {
	dflt, exc := "devices.deny", "devices.allow"
	if want.DefaultAllow {
		dflt, exc = exc, dflt
	}
	if err := root.Write(rel, dflt, "a"); err != nil {
		return err
	}
	for _, d := range want.Exceptions {
		if err := root.Write(rel, exc, d.String()); err != nil {
			return err
		}
	}
	return nil
}

// updateAllowList turns the allow list cur (devices.list lines) into want:
// allows first (the kernel merges access into an equal exception), then a
// deny of exactly the access each old exception has beyond want, which the
// kernel subtracts from the exception with the same type and numbers.
func updateAllowList(root *cgfs.Root, rel string, cur []string, want []cgroups.DeviceRule) error {
	for _, d := range want {
		if !slices.Contains(cur, d.String()) {
			if err := root.Write(rel, "devices.allow", d.String()); err != nil {
				return err
			}
		}
	}
	for _, line := range cur {
		typ, nums, access, ok := splitListLine(line)
		if !ok {
			return cgroups.Invalidf("devices.list of /%s: unexpected line %q", rel, line)
		}
		keep := ""
		for _, d := range want {
			if d.String() == fmt.Sprintf("%s %s %s", typ, nums, d.Access) {
				keep = d.Access
			}
		}
		stale := strings.Map(func(c rune) rune {
			if strings.ContainsRune(keep, c) {
				return -1
			}
			return c
		}, access)
		if stale != "" {
			if err := root.Write(rel, "devices.deny", typ+" "+nums+" "+stale); err != nil {
				return err
			}
		}
	}
	return nil
}

func splitListLine(line string) (typ, nums, access string, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}

// readDevices returns the lines of devices.list.
func readDevices(root *cgfs.Root, rel string) ([]string, error) {
	s, err := root.Read(rel, "devices.list")
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

// checkDevices compares devices.list with want. With a default of allow
// the kernel shows only "a *:* rwm", so only the mode can be checked then.
func checkDevices(root *cgfs.Root, rel string, want cgroups.DeviceSet) error {
	got, err := readDevices(root, rel)
	if err != nil {
		return err
	}
	exp := []string{allDevices}
	if !want.DefaultAllow {
		exp = make([]string, 0, len(want.Exceptions))
		for _, d := range want.Exceptions {
			exp = append(exp, d.String())
		}
	}
	slices.Sort(got)
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		return cgroups.Preconditionf("devices cgroup /%s: devices.list is %q after writing the rules, want %q "+
			"(does a parent cgroup restrict devices?)", rel, got, exp)
	}
	return nil
}
