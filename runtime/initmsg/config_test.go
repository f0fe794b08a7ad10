package initmsg

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// notForInit are the spec fields WriteConfig leaves out. A field that
// runtime-spec adds is set by fill and fails the round trip below until it
// is either carried or listed here with its reason in config.go.
var notForInit = []cmp.Option{
	cmpopts.IgnoreFields(specs.Spec{}, "Hooks", "Annotations", "Solaris", "Windows", "VM", "ZOS", "FreeBSD"),
	cmpopts.IgnoreFields(specs.Linux{}, "Resources", "CgroupsPath", "IntelRdt", "NetDevices"),
}

// Every field of Config, and of its spec what the init reads, arrives: a
// field added to Config but not to configWire fails here (CgroupMounts
// once did, and every init read mountinfo again).
func TestConfigCarriesWhatInitReads(t *testing.T) {
	in := &Config{}
	fill(reflect.ValueOf(in).Elem(), 0)
	in.Version = VersionHooks // what WriteConfig sends with a filter and hooks
	for name, write := range map[string]func(*bytes.Buffer) error{
		"WriteConfig": func(b *bytes.Buffer) error { return WriteConfig(b, in) },
		"Write":       func(b *bytes.Buffer) error { return Write(b, in) },
	} {
		var buf bytes.Buffer
		if err := write(&buf); err != nil {
			t.Fatal(err)
		}
		var out Config
		if err := ReadConfig(&buf, &out); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(in, &out, notForInit...); diff != "" {
			t.Errorf("%s, then ReadConfig: (-sent +received)\n%s", name, diff)
		}
	}
}

func TestConfigLeavesOut(t *testing.T) {
	spec := &specs.Spec{Annotations: map[string]string{"a": "b"}, Hooks: &specs.Hooks{},
		Linux: &specs.Linux{CgroupsPath: "/x", Resources: &specs.LinuxResources{}}}
	var buf bytes.Buffer
	if err := WriteConfig(&buf, &Config{Spec: spec}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"annotations", "hooks", "cgroupsPath", "resources"} {
		if bytes.Contains(buf.Bytes(), []byte(s)) {
			t.Errorf("WriteConfig sent %q: %s", s, buf.Bytes())
		}
	}
	var out Config
	if err := ReadConfig(&buf, &out); err != nil || out.Spec == nil || out.Spec.Linux == nil {
		t.Fatalf("ReadConfig = %+v, %v", out, err)
	}
	if err := ReadConfig(bytes.NewReader([]byte("\x00\x00\x00\x0c{\"spec\":null")), &out); err == nil {
		t.Error("ReadConfig of bad JSON: no error")
	}
}

// fill sets every field reachable from v to a non-zero value.
func fill(v reflect.Value, depth int) {
	if depth > 14 { // deep enough for seccomp's syscall rules and their args
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), depth+1)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, depth+1)
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	}
}

func TestSeccompFilterRoundTrip(t *testing.T) {
	prog := []unix.SockFilter{{Code: 0x20, K: 4}, {Code: 0x15, Jt: 1, Jf: 2, K: 0xc000003e}, {Code: 0x6, K: 0x7fff0000}}
	var buf bytes.Buffer
	if err := WriteConfig(&buf, &Config{Version: Version, Seccomp: NewSeccompFilter(prog, 2)}); err != nil {
		t.Fatal(err)
	}
	// An init from before the field must refuse the config, not run the
	// process without its filter: the version says it.
	var old struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(buf.Bytes()[4:], &old); err != nil || old.Version != VersionSeccompFilter {
		t.Fatalf("a config with a compiled filter went as version %d (%v), want %d", old.Version, err, VersionSeccompFilter)
	}
	var out Config
	if err := ReadConfig(&buf, &out); err != nil {
		t.Fatal(err)
	}
	got, err := out.Seccomp.Instructions()
	if err != nil || out.Seccomp.Flags != 2 {
		t.Fatalf("Instructions = %v, flags %d", err, out.Seccomp.Flags)
	}
	if diff := cmp.Diff(prog, got); diff != "" {
		t.Errorf("program (-sent +received)\n%s", diff)
	}
	for _, n := range []int{0, 7, 9, 8 * 4097} {
		if _, err := (&SeccompFilter{Program: make([]byte, n)}).Instructions(); err == nil {
			t.Errorf("a program of %d bytes: no error", n)
		}
	}
}

// A config with hooks goes as VersionHooks, so an init from before them
// refuses it rather than start the container without running them; one
// without goes as before.
func TestHooksNeedTheirVersion(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want int
	}{
		{Config{Version: Version}, Version},
		{Config{Version: Version, Seccomp: &SeccompFilter{}}, VersionSeccompFilter},
		{Config{Version: Version, Hooks: &Hooks{Runtime: true}}, VersionHooks},
		{Config{Version: Version, Seccomp: &SeccompFilter{}, Hooks: &Hooks{}}, VersionHooks},
	} {
		var buf bytes.Buffer
		if err := WriteConfig(&buf, &c.cfg); err != nil {
			t.Fatal(err)
		}
		var got struct {
			Version int `json:"version"`
		}
		if err := json.Unmarshal(buf.Bytes()[4:], &got); err != nil || got.Version != c.want {
			t.Errorf("WriteConfig(%+v) went as version %d (%v), want %d", c.cfg, got.Version, err, c.want)
		}
	}
}

// A raw field the init cannot decode fails the read, naming the field: the
// seccomp profile or an id mapping must never be dropped quietly.
func TestReadConfigRefusesBadRawFields(t *testing.T) {
	for _, tc := range []struct{ json, field string }{
		{`{"spec":{"linux":{"seccomp":5}}}`, "spec.linux.seccomp"},
		{`{"spec":{"linux":{"uidMappings":{}}}}`, "spec.linux.uidMappings"},
		{`{"spec":{"linux":{"timeOffsets":[]}}}`, "spec.linux.timeOffsets"},
		{`{"spec":{"mounts":[{"destination":"/a"},{"destination":"/b","gidMappings":"x"}]}}`, "spec.mounts[1].gidMappings"},
		{`{"spec":{"process":{"cwd":"/","scheduler":[]}}}`, "spec.process.scheduler"},
		{`{"containerHooks":[]}`, "containerHooks"},
	} {
		msg := append(binary.BigEndian.AppendUint32(nil, uint32(len(tc.json))), tc.json...)
		var out Config
		err := ReadConfig(bytes.NewReader(msg), &out)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("ReadConfig(%s) = %v, want an error naming %s", tc.json, err, tc.field)
		}
		if !reflect.DeepEqual(out, Config{}) {
			t.Errorf("ReadConfig(%s) filled the config on failure: %+v", tc.json, out)
		}
	}
}
