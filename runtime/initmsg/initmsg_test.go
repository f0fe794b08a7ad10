package initmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := Config{Version: Version, Role: RoleInit, Spec: &specs.Spec{Hostname: "h"}, Rootfs: Rootfs{Lower: []string{"/l1"}}}
	if err := Write(&buf, in); err != nil {
		t.Fatal(err)
	}
	if err := Write(&buf, Message{Type: TypeError, Step: "mount", Path: "/proc", Error: "mount /proc: EPERM", Errno: 1}); err != nil {
		t.Fatal(err)
	}
	var out Config
	if err := Read(&buf, &out); err != nil || out.Spec.Hostname != "h" || out.Rootfs.Lower[0] != "/l1" {
		t.Fatalf("Read = %+v, %v", out, err)
	}
	var m Message
	if err := Read(&buf, &m); err != nil {
		t.Fatal(err)
	}
	var ie *InitError
	if err := m.Err(); !errors.As(err, &ie) || ie.Step != "mount" || ie.Path != "/proc" || ie.Errno != 1 {
		t.Fatalf("Err() = %v", err)
	}
	if err := Read(&buf, &m); err != io.EOF {
		t.Fatalf("empty stream: %v, want io.EOF", err)
	}
}

func TestReadRejects(t *testing.T) {
	var m Message
	for name, in := range map[string]string{
		"huge length": "\xff\xff\xff\xff",
		"short body":  "\x00\x00\x00\x10{}",
		"bad json":    "\x00\x00\x00\x02{x",
		"short hdr":   "\x00\x00",
	} {
		if err := Read(strings.NewReader(in), &m); err == nil || err == io.EOF {
			t.Errorf("%s: got %v, want an error", name, err)
		}
	}
}

// TestMessageEncodesAsReflection checks Message's own encoder against the
// one encoding/json builds by reflection, byte for byte.
func TestMessageEncodesAsReflection(t *testing.T) {
	type reflected Message // the same fields, without MarshalJSON
	// Every field set, so that a field added to Message and not to
	// MarshalJSON fails here.
	var full Message
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		default:
			t.Fatalf("Message.%s: a %s, which this test does not fill", v.Type().Field(i).Name, f.Kind())
		}
	}
	for _, m := range []Message{
		full,
		{Type: TypeReady},
		{Type: TypeStart},
		{Type: TypeError, Step: "mount", Path: "/proc", Errno: 1, Error: "mount /proc: operation not permitted"},
		{Type: TypeError, Errno: -3, Error: "quote \" backslash \\ newline \n tab \t nul \x00 <html> & \u2028"},
		{Type: TypeError, Path: "bad utf-8 \xff\xfe", Step: "cwd"},
		{Type: "", Error: "no type"},
	} {
		got, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(reflected(m))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%+v:\n got %s\nwant %s", m, got, want)
		}
	}
}
