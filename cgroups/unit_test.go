package cgroups

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestExpandSlice is systemd's own table (src/test/test-cgroup-util.c,
// test_slice_to_path), with paths absolute as crib writes them.
func TestExpandSlice(t *testing.T) {
	tests := []struct{ name, want string }{
		{"foobar.slice", "/foobar.slice"},
		{"foobar-waldo.slice", "/foobar.slice/foobar-waldo.slice"},
		{"foobar-waldo.service", ""},
		{RootSlice, "/"},
		{"--.slice", ""},
		{"-", ""},
		{"-foo-.slice", ""},
		{"-foo.slice", ""},
		{"foo-.slice", ""},
		{"foo--bar.slice", ""},
		{"foo.slice/foo--bar.slice", ""},
		{"a-b.slice", "/a.slice/a-b.slice"},
		{"a-b-c-d-e.slice", "/a.slice/a-b.slice/a-b-c.slice/a-b-c-d.slice/a-b-c-d-e.slice"},
		{"foobar@.slice", ""},
		{"foobar@waldo.slice", ""},
		{"foobar@waldo.service", ""},
		{"-foo@-.slice", ""},
		{"-foo@.slice", ""},
		{"foo@-.slice", ""},
		{"foo@@bar.slice", ""},
		{"foo.slice/foo@@bar.slice", ""},
		// The kubelet's, and what crib adds.
		{"kubepods-burstable-pod0f1e.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e.slice"},
		{"kubepods-besteffort-pod1a2b_3c4d.slice", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b_3c4d.slice"},
		// An escaped dash (systemd-escape) is part of the name.
		{`a\x2db-c.slice`, `/a\x2db.slice/a\x2db-c.slice`},
		// Names that would clash with interface files get a "_".
		{"cpu.x-y.slice", "/_cpu.x.slice/_cpu.x-y.slice"},
		{"_a.slice", "/__a.slice"},
		{"a b.slice", ""},
		{"a/b.slice", ""},
		{".slice", ""},
		{"", ""},
		{strings.Repeat("a", 250) + ".slice", ""},
	}
	for _, tc := range tests {
		got, err := ExpandSlice(tc.name)
		if tc.want == "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("ExpandSlice(%q) = %q, %v; want InvalidArgument naming it", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestCgEscape is systemd's test_escape.
func TestCgEscape(t *testing.T) {
	for in, want := range map[string]string{
		"foobar": "foobar", ".foobar": "_.foobar", "foobar.service": "foobar.service",
		"cgroup.service": "_cgroup.service", "tasks": "_tasks", "cpu.service": "_cpu.service",
		"_foobar": "__foobar", "cpuacct.slice": "_cpuacct.slice", "cpux.slice": "cpux.slice",
		"io.slice": "_io.slice", "crib-0a.scope": "crib-0a.scope",
	} {
		if got := cgEscape(in); got != want {
			t.Errorf("cgEscape(%q) = %q, want %q", in, got, want)
		}
		if got := cgUnescape(cgEscape(in)); got != in {
			t.Errorf("cgUnescape(cgEscape(%q)) = %q", in, got)
		}
	}
}

func TestScopeOf(t *testing.T) {
	tests := []struct {
		path, scope, slice string
	}{
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crib-ab.scope", "crib-ab.scope", "kubepods-burstable-pod1.slice"},
		{"/crib-ab.scope", "crib-ab.scope", RootSlice},
		{"/_cpu.x.slice/crib-ab.scope", "crib-ab.scope", "cpu.x.slice"},
		{"/kubepods.slice/crib-ab", "", ""},                         // not a scope
		{"/kubepods/crib-ab.scope", "", ""},                         // not in a slice
		{"/a.slice/a-b.slice/b-c.slice/crib-ab.scope", "", ""},      // b-c.slice is not in a-b.slice
		{"/kubepods.slice/kubepods-x.slice/crib@ab.scope", "", ""},  // an instance
		{"/kubepods.slice/kubepods-x.slice/_crib-ab.scope", "", ""}, // "_" unescapes to a name that needs no escape
	}
	for _, tc := range tests {
		scope, slice, err := ScopeOf(tc.path)
		if tc.scope == "" {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("ScopeOf(%q) = %q, %q, %v; want InvalidArgument", tc.path, scope, slice, err)
			}
			continue
		}
		if err != nil || scope != tc.scope || slice != tc.slice {
			t.Errorf("ScopeOf(%q) = %q, %q, %v; want %q, %q", tc.path, scope, slice, err, tc.scope, tc.slice)
		}
	}
}

func TestUnit(t *testing.T) {
	for p, want := range map[string]string{
		"/kubepods.slice/kubepods-besteffort.slice": "kubepods-besteffort.slice",
		"/crib.slice/crib-ab.scope":                 "crib-ab.scope",
		"/_cpu.x.slice":                             "cpu.x.slice",
		"/crib/pod1":                                "",
		"/":                                         "",
	} {
		got, ok := Unit(p)
		if got != want || ok != (want != "") {
			t.Errorf("Unit(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
}

// TestCribSlice: crib makes (and so stops) slices for pods only in its
// own root slice and the kubelet's kubepods slices, never in slices that
// logind, systemd or a VM manager fill (user-1000.slice, machine.slice).
func TestCribSlice(t *testing.T) {
	const root = "/crib.slice"
	tests := []struct {
		p    string
		want bool
	}{
		{"/crib.slice", true},
		{"/crib.slice/crib-pod1.slice", true},
		{"/kubepods.slice", true},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice", true},
		{"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod1.slice", true},
		{"/cribx.slice", false},
		{"/user.slice/user-1000.slice", false},
		{"/system.slice/system-sshd.slice", false},
		{"/machine.slice", false},
		{"/kubepodsx.slice", false},
	}
	for _, tt := range tests {
		if got := CribSlice(tt.p, root); got != tt.want {
			t.Errorf("CribSlice(%q, %q) = %v, want %v", tt.p, root, got, tt.want)
		}
	}
}
