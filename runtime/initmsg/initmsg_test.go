package initmsg

import (
	"bytes"
	"errors"
	"io"
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
