package cgroups

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

func dev(allow bool, typ DeviceType, major, minor int64, access string) DeviceRule {
	return DeviceRule{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

func TestNewDeviceSet(t *testing.T) {
	denyAll := dev(false, DeviceAll, AnyDevice, AnyDevice, "rwm")
	allowAll := dev(true, DeviceAll, AnyDevice, AnyDevice, "rwm")
	tests := []struct {
		name  string
		rules []DeviceRule
		want  DeviceSet
	}{
		{"empty denies all", []DeviceRule{}, DeviceSet{}},
		{"no a rule is an allow list", []DeviceRule{dev(true, 'c', 1, 3, "rwm")},
			DeviceSet{Exceptions: []DeviceRule{dev(true, 'c', 1, 3, "rwm")}}},
		{"deny all then allows", []DeviceRule{denyAll, dev(true, 'c', AnyDevice, AnyDevice, "m"), dev(true, 'c', 1, 3, "rwm")},
			DeviceSet{Exceptions: []DeviceRule{dev(true, 'c', AnyDevice, AnyDevice, "m"), dev(true, 'c', 1, 3, "rwm")}}},
		{"privileged", []DeviceRule{allowAll}, DeviceSet{DefaultAllow: true}},
		{"the last a rule wins", []DeviceRule{dev(true, 'c', 1, 3, "rwm"), allowAll, dev(false, 'b', 8, AnyDevice, "rw")},
			DeviceSet{DefaultAllow: true, Exceptions: []DeviceRule{dev(false, 'b', 8, AnyDevice, "rw")}}},
		{"equal devices merge", []DeviceRule{denyAll, dev(true, 'c', 4, 1, "r"), dev(true, 'c', 4, 1, "wm")},
			DeviceSet{Exceptions: []DeviceRule{dev(true, 'c', 4, 1, "rwm")}}},
		{"a no-op before any exception is dropped", []DeviceRule{denyAll, dev(false, 'c', 1, 3, "rwm"), dev(true, 'c', 1, 5, "r")},
			DeviceSet{Exceptions: []DeviceRule{dev(true, 'c', 1, 5, "r")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewDeviceSet(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestNewDeviceSetRefuses(t *testing.T) {
	denyAll := dev(false, DeviceAll, AnyDevice, AnyDevice, "rwm")
	tests := []struct {
		name  string
		rules []DeviceRule
		want  string
	}{
		{"narrow a rule", []DeviceRule{dev(false, DeviceAll, 1, AnyDevice, "rwm")}, "device rule 0 (a 1:* rwm): type a must name every device"},
		{"a rule without all access", []DeviceRule{dev(true, DeviceAll, AnyDevice, AnyDevice, "r")}, "type a must name every device"},
		{"unknown type", []DeviceRule{dev(true, 'p', 1, 3, "rwm")}, `type "p": want a, c or b`},
		{"major too big", []DeviceRule{dev(true, 'c', 4096, 3, "rwm")}, "major 4096: want * or 0..4095"},
		{"negative minor", []DeviceRule{dev(true, 'c', 1, -2, "rwm")}, "minor -2"},
		{"no access", []DeviceRule{dev(true, 'c', 1, 3, "")}, "no access"},
		{"bad access", []DeviceRule{dev(true, 'c', 1, 3, "rx")}, `access "rx"`},
		{"hole in an exception", []DeviceRule{denyAll, dev(true, 'c', AnyDevice, AnyDevice, "rwm"), dev(false, 'c', 1, 1, "rwm")},
			"device rule 2 (c 1:1 rwm) denies like the default, after an exception that allows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDeviceSet(tt.rules)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("err = %v, want InvalidArgument containing %q", err, tt.want)
			}
			r := &Resources{Devices: tt.rules}
			if err := r.Validate(); err == nil {
				t.Error("Validate accepted the rules")
			}
		})
	}
}

func TestDeviceAccess(t *testing.T) {
	for in, want := range map[string]string{"": "rwm", "mr": "rm", "wrm": "rwm", "rx": "rx"} {
		if got := DeviceAccess(in); got != want {
			t.Errorf("DeviceAccess(%q) = %q, want %q", in, got, want)
		}
	}
	if got := dev(true, 'c', AnyDevice, 7, "rw").String(); got != "c *:7 rw" {
		t.Errorf("String = %q", got)
	}
}
