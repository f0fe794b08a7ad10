package initmsg

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A config with the values at the edges of their types, nulls and empty
// lists, as a container's init may get it.
func edgeConfig() *Config {
	u32, i := uint32(math.MaxUint32), -1000
	mode := os.FileMode(0o666)
	return &Config{Version: VersionHooks, Role: RoleInit, DevShm: "/shm",
		Spec: &specs.Spec{Version: "1.2.0", Hostname: "h",
			Process: &specs.Process{Terminal: true, ConsoleSize: &specs.Box{Height: math.MaxUint, Width: 1},
				User: specs.User{UID: math.MaxUint32, GID: 0, Umask: &u32, AdditionalGids: []uint32{}},
				Args: []string{"sh", "-c", "é\x00\"\\"}, Env: []string{}, Cwd: "/",
				Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Ambient: []string{}},
				Rlimits:      []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: math.MaxUint64, Soft: 0}},
				OOMScoreAdj:  &i, Scheduler: &specs.Scheduler{Policy: "SCHED_OTHER", Nice: -5}},
			Root: &specs.Root{Path: "/r", Readonly: true},
			Mounts: []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/m", Options: []string{},
				UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: math.MaxUint32, Size: 1}}}},
			Linux: &specs.Linux{Sysctl: map[string]string{"net.ipv4.ip_forward": "1", "": ""},
				Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}},
				Devices: []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: math.MinInt64, Minor: math.MaxInt64,
					FileMode: &mode, UID: &u32}},
				MaskedPaths: []string{"/proc/kcore"}, TimeOffsets: map[string]specs.LinuxTimeOffset{"boottime": {Secs: -1}}}},
		Rootfs:       Rootfs{Lower: []string{"/l1", "/l2"}, Upper: "/u", Work: "/w"},
		Seccomp:      &SeccompFilter{Program: []byte{0, 1, 2, 255}, Flags: math.MaxUint},
		CgroupMounts: []CgroupMount{{MountPoint: "/sys/fs/cgroup/cpu", Root: "/", FSType: "cgroup", Controllers: []string{"cpu", "cpuacct"}}},
		Hooks:        &Hooks{Runtime: true, State: specs.State{Pid: -1}},
	}
}

// decodeConfig reads what encoding/json's typed decoding reads, to the
// bit: the edge values, and ~3,000 configs with one value replaced by
// another of any JSON type, each either decoded alike or refused by both.
func TestDecodeConfigAgreesWithEncodingJSON(t *testing.T) {
	data, err := json.Marshal(edgeConfig())
	if err != nil {
		t.Fatal(err)
	}
	check := func(data []byte) (ok bool) {
		t.Helper()
		var want, got Config
		wantErr := json.Unmarshal(data, &want)
		gotErr := decodeConfig(data, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%s\nencoding/json: %v\ndecodeConfig: %v", data, wantErr, gotErr)
		}
		if gotErr != nil {
			if !reflect.DeepEqual(got, Config{}) {
				t.Fatalf("%s: refused (%v) but filled the config: %+v", data, gotErr, got)
			}
			return false
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s\n(-encoding/json +decodeConfig)\n%s", data, diff)
		}
		return true
	}
	if !check(data) {
		t.Fatal("the edge config was refused")
	}
	values := []string{`null`, `""`, `"x"`, `0`, `-1`, `1.5`, `1e3`, `-0`, `255`, `4294967295`, `4294967296`,
		`18446744073709551615`, `18446744073709551616`, `-9223372036854775809`, `true`, `[]`, `{}`, `[null]`,
		`["a"]`, `[1]`, `{"a":"b"}`, `{"a":1}`, `[{}]`, `"AAE="`, `"!"`}
	rng := rand.New(rand.NewPCG(1, 2))
	decoded := 0
	for n := 0; n < 3000; n++ {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var tree any
		if err := dec.Decode(&tree); err != nil {
			t.Fatal(err)
		}
		var set []func(any)
		setters(tree, nil, &set)
		set[1+rng.IntN(len(set)-1)](json.RawMessage(values[rng.IntN(len(values))]))
		mutated, err := json.Marshal(tree)
		if err != nil {
			t.Fatal(err)
		}
		if check(mutated) {
			decoded++
		}
	}
	t.Logf("%d of 3000 mutated configs decoded", decoded)
	// Both outcomes must be common, or the test proves little.
	if decoded < 300 || decoded > 2700 {
		t.Errorf("%d of 3000 mutated configs decoded", decoded)
	}
}

// setters lists, for every value of the tree in a fixed order, the root
// first, a function that replaces it. The seccomp program is left out:
// encoding/json also takes a []byte as an array of numbers, which no
// launcher sends.
func setters(v any, set func(any), out *[]func(any)) {
	*out = append(*out, set)
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if k != "program" {
				setters(x[k], func(n any) { x[k] = n }, out)
			}
		}
	case []any:
		for i, e := range x {
			setters(e, func(n any) { x[i] = n }, out)
		}
	}
}

func TestDecodeConfigNamesTheField(t *testing.T) {
	for _, tc := range []struct{ json, field string }{
		{`{"spec":{"process":{"user":{"uid":-1}}}}`, "spec.process.user.uid"},
		{`{"spec":{"process":{"rlimits":[{"hard":1},{"soft":"x"}]}}}`, "spec.process.rlimits[1].soft"},
		{`{"spec":{"linux":{"devices":[{"fileMode":4294967296}]}}}`, "spec.linux.devices[0].fileMode"},
		{`{"cgroupMounts":[{"controllers":[1]}]}`, "cgroupMounts[0].controllers[0]"},
		{`{"seccompFilter":{"program":"!"}}`, "seccompFilter.program"},
		{`{"spec":{"mounts":{}}}`, "spec.mounts"},
		{`{"version":1} {}`, "after the config"},
		{`null`, "null"},
		{`[1]`, "the config: want an object, got an array"},
	} {
		var out Config
		err := decodeConfig([]byte(tc.json), &out)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("decodeConfig(%s) = %v, want an error naming %s", tc.json, err, tc.field)
		}
	}
}
