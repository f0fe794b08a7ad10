package systemd

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/google/go-cmp/cmp"

	"github.com/crib-runtime/crib/cgroups"
)

// values maps each property to its value; a name set twice keeps its
// values in order (DeviceAllow: the clearing one, then the list).
func values(props []sd.Property) map[string]any {
	m := map[string]any{}
	for _, p := range props {
		v := p.Value.Value()
		if old, ok := m[p.Name]; ok {
			if list, ok := old.([]any); ok {
				m[p.Name] = append(list, v)
			} else {
				m[p.Name] = []any{old, v}
			}
			continue
		}
		m[p.Name] = v
	}
	return m
}

func ptr[T any](v T) *T { return &v }

func TestResourceProperties(t *testing.T) {
	r := &cgroups.Resources{
		CPUWeight:          ptr(uint64(100)),
		CPUMax:             &cgroups.CPUMax{QuotaMicros: 12345, PeriodMicros: 100000},
		MemoryMaxBytes:     ptr(int64(256 << 20)),
		MemorySwapMaxBytes: ptr(int64(0)),
		PidsMax:            ptr(cgroups.Max),
		CpusetCPUs:         "0-2,9",
		CpusetMems:         "0",
		BlockIO:            &cgroups.BlockIO{Weight: 500},
		Unified:            map[string]string{"memory.high": "1048576", "memory.low": "max", "cpu.idle": "1", "memory.min": "1G"},
	}
	tests := []struct {
		name    string
		v2      bool
		version int
		want    map[string]any
	}{
		{"v2", true, 252, map[string]any{
			"CPUWeight": uint64(100), "CPUQuotaPeriodUSec": uint64(100000),
			// 12345 µs per 100 ms is 123450 µs per second, rounded up to 1 %.
			"CPUQuotaPerSecUSec": uint64(130000),
			"MemoryMax":          uint64(256 << 20), "MemorySwapMax": uint64(0), "TasksMax": infinity,
			"AllowedCPUs": []byte{0x07, 0x02}, "AllowedMemoryNodes": []byte{0x01},
			"IOWeight":   uint64(4950),
			"MemoryHigh": uint64(1048576), "MemoryLow": infinity, "MemoryMin": uint64(1 << 30),
		}},
		{"v1", false, 252, map[string]any{
			"CPUShares": uint64(2598), "CPUQuotaPeriodUSec": uint64(100000), "CPUQuotaPerSecUSec": uint64(130000),
			"MemoryLimit": uint64(256 << 20), "TasksMax": infinity, "BlockIOWeight": uint64(500),
		}},
		{"old systemd", true, 239, map[string]any{
			"CPUWeight": uint64(100), "CPUQuotaPerSecUSec": uint64(130000),
			"MemoryMax": uint64(256 << 20), "MemorySwapMax": uint64(0), "TasksMax": infinity,
			"IOWeight": uint64(4950), "MemoryHigh": uint64(1048576), "MemoryLow": infinity, "MemoryMin": uint64(1 << 30),
		}},
	}
	for _, tc := range tests {
		props, err := resourceProperties(r, tc.v2, tc.version)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, values(props)); diff != "" {
			t.Errorf("%s: properties (-want +got):\n%s", tc.name, diff)
		}
	}
	if props, err := resourceProperties(nil, true, 252); err != nil || props != nil {
		t.Errorf("nil resources: %v, %v", props, err)
	}
	unlimited := &cgroups.Resources{CPUMax: &cgroups.CPUMax{QuotaMicros: cgroups.Max}}
	if got := values(mustProps(t, unlimited, true, 252)); !cmp.Equal(got, map[string]any{"CPUQuotaPerSecUSec": infinity}) {
		t.Errorf("no quota: %v", got)
	}
	if _, err := resourceProperties(&cgroups.Resources{CpusetCPUs: "3-1"}, true, 252); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad cpuset: %v", err)
	}
}

func mustProps(t *testing.T, r *cgroups.Resources, v2 bool, version int) []sd.Property {
	t.Helper()
	props, err := resourceProperties(r, v2, version)
	if err != nil {
		t.Fatal(err)
	}
	return props
}

func TestDeviceProperties(t *testing.T) {
	rule := func(allow bool, typ cgroups.DeviceType, major, minor int64, access string) cgroups.DeviceRule {
		return cgroups.DeviceRule{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
	}
	denyAll := rule(false, cgroups.DeviceAll, cgroups.AnyDevice, cgroups.AnyDevice, "rwm")
	none := []deviceAllow{}
	tests := []struct {
		name    string
		rules   []cgroups.DeviceRule
		version int
		want    map[string]any
	}{
		{"allow list", []cgroups.DeviceRule{denyAll,
			rule(true, cgroups.DeviceChar, 1, 3, "rwm"),
			rule(true, cgroups.DeviceChar, 136, cgroups.AnyDevice, "rw"),
			rule(true, cgroups.DeviceBlock, cgroups.AnyDevice, cgroups.AnyDevice, "m"),
			rule(true, cgroups.DeviceChar, cgroups.AnyDevice, 5, "r"), // systemd cannot name it
			rule(true, cgroups.DeviceBlock, 8, 0, "r"),
		}, 252, map[string]any{"DevicePolicy": "strict", "DeviceAllow": []any{none, []deviceAllow{
			{"/dev/char/1:3", "rwm"}, {"char-136", "rw"}, {"block-*", "m"}, {"/dev/block/8:0", "r"}}}}},
		{"old systemd", []cgroups.DeviceRule{denyAll,
			rule(true, cgroups.DeviceChar, 1, 3, "rwm"), rule(true, cgroups.DeviceChar, cgroups.AnyDevice, cgroups.AnyDevice, "m"),
		}, 239, map[string]any{"DevicePolicy": "strict", "DeviceAllow": []any{none, []deviceAllow{{"char-*", "m"}}}}},
		{"privileged", cgroups.AllowAllDevices(), 252, map[string]any{"DevicePolicy": "auto", "DeviceAllow": none}},
		// systemd has no deny lists: it allows nothing, crib's rules
		// (written after) are the cgroup's.
		{"deny list", append(cgroups.AllowAllDevices(), rule(false, cgroups.DeviceChar, 1, 3, "rwm")), 252,
			map[string]any{"DevicePolicy": "strict", "DeviceAllow": none}},
		{"no rules", []cgroups.DeviceRule{}, 252, map[string]any{"DevicePolicy": "strict", "DeviceAllow": []any{none, []deviceAllow(nil)}}},
	}
	for _, tc := range tests {
		props, err := resourceProperties(&cgroups.Resources{Devices: tc.rules}, true, tc.version)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, values(props)); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tc.name, diff)
		}
	}
	bad := []cgroups.DeviceRule{rule(true, 'x', 1, 1, "r")}
	if _, err := resourceProperties(&cgroups.Resources{Devices: bad}, true, 252); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad rule: %v", err)
	}
}

func TestScopeProperties(t *testing.T) {
	r := &cgroups.Resources{Unified: map[string]string{"memory.oom.group": "1"}}
	tests := []struct {
		name    string
		r       *cgroups.Resources
		v2      bool
		version int
		want    map[string]any
	}{
		{"v2", nil, true, 252, map[string]any{"OOMPolicy": "continue", "IOAccounting": true}},
		{"v2 oom group", r, true, 252, map[string]any{"OOMPolicy": "kill", "IOAccounting": true}},
		{"v2 before OOMPolicy", nil, true, 242, map[string]any{"IOAccounting": true}},
		{"v1", nil, false, 252, map[string]any{"BlockIOAccounting": true}},
	}
	for _, tc := range tests {
		props, err := scopeProperties("crib-c1.scope", "kubepods.slice", 42, tc.r, tc.v2, tc.version)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"Description": "crib crib-c1.scope", "Slice": "kubepods.slice", "Delegate": true,
			"PIDs": []uint32{42}, "DefaultDependencies": false, "MemoryAccounting": true, "CPUAccounting": true, "TasksAccounting": true}
		for k, v := range tc.want {
			want[k] = v
		}
		if diff := cmp.Diff(want, values(props)); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]int{`"252.33-1~deb12u1"`: 252, `"v245.4-1.fc32"`: 245, "257": 257, `""`: 0, "x": 0} {
		if got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestUnifiedSuffixes: unified values the kernel takes with a suffix
// ("1G", "512M") reach systemd as bytes: left out, they were reset to max
// by systemd at its next daemon-reload, the scope having memory
// accounting on. Values the kernel would refuse are InvalidArgument
// naming the key, and systemd hears of none.
func TestUnifiedSuffixes(t *testing.T) {
	r := &cgroups.Resources{Unified: map[string]string{
		"memory.high": "1G", "memory.max": "512M", "memory.low": " 64k\n", "memory.min": "0x10M",
		"memory.swap.max": "max", "pids.max": "010", "cpu.weight": "+50",
	}}
	want := map[string]any{
		"MemoryHigh": uint64(1 << 30), "MemoryMax": uint64(512 << 20), "MemoryLow": uint64(64 << 10), "MemoryMin": uint64(16 << 20),
		"MemorySwapMax": infinity, "TasksMax": uint64(8), "CPUWeight": uint64(50),
	}
	if diff := cmp.Diff(want, values(mustProps(t, r, true, 252))); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	for k, v := range map[string]string{
		"memory.high": "1.5G", "memory.max": "1GB", "memory.low": "", "memory.min": "-1", "memory.swap.max": "16E",
		"pids.max": "1K", "cpu.weight": "max", "memory.max ": "x",
	} {
		_, err := resourceProperties(&cgroups.Resources{Unified: map[string]string{k: v, "memory.high": "1G"}}, true, 252)
		if _, known := unifiedFiles[k]; !known {
			if err != nil {
				t.Errorf("%q (no property) = %v, want it left to crib", k, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), k) {
			t.Errorf("%s = %q: %v, want InvalidArgument naming the key", k, v, err)
		}
	}
}
