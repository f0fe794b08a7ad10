package cgroups

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestPaths(t *testing.T) {
	tests := []struct {
		paths       Paths
		parent, id  string
		want        string
		kind        error
		errMentions string
	}{
		{Paths{}, "/kubepods/burstable/pod1", "c1", "/kubepods/burstable/pod1/c1", nil, ""},
		{Paths{}, "/kubepods//besteffort/pod2/", "c1", "/kubepods/besteffort/pod2/c1", nil, ""},
		{Paths{}, "", "c1", "/crib/c1", nil, ""},
		{Paths{Root: "/other"}, "", "c1", "/other/c1", nil, ""},
		{Paths{Root: "/other"}, "pods/p1", "c1", "/other/pods/p1/c1", nil, ""},
		{Paths{}, "/kubepods/../../etc", "c1", "", errdefs.ErrInvalidArgument, "escapes"},
		{Paths{}, "../x", "c1", "", errdefs.ErrInvalidArgument, "escapes"},
		{Paths{}, "/kubepods", "../c1", "", errdefs.ErrInvalidArgument, "not a valid"},
		{Paths{}, "/kubepods", "a/b", "", errdefs.ErrInvalidArgument, "not a valid"},
		{Paths{}, "kubepods-burstable-pod1.slice", "c1", "", errdefs.ErrFailedPrecondition, "cgroup_driver"},
		{Paths{}, "system.slice:crib:c1", "c1", "", errdefs.ErrFailedPrecondition, "cgroup_driver"},
		{Paths{Driver: DriverSystemd}, "/kubepods", "c1", "", errdefs.ErrFailedPrecondition, "cgroup_driver"},
		{Paths{Root: "relative"}, "", "c1", "", errdefs.ErrInvalidArgument, "not absolute"},
	}
	for _, tc := range tests {
		got, err := tc.paths.Container(tc.parent, tc.id)
		if tc.kind == nil {
			if err != nil || got != tc.want {
				t.Errorf("%+v.Container(%q, %q) = %q, %v; want %q", tc.paths, tc.parent, tc.id, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.errMentions) {
			t.Errorf("%+v.Container(%q, %q) = %v; want %v mentioning %q", tc.paths, tc.parent, tc.id, err, tc.kind, tc.errMentions)
		}
	}
	if Rel("/") != "." || Rel("/a/b") != "a/b" {
		t.Errorf("Rel is wrong")
	}
}

const podID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestSystemdPaths(t *testing.T) {
	sd := Paths{Driver: DriverSystemd}
	tests := []struct {
		paths       Paths
		parent      string
		pod, leaf   string // Pod(parent, podID), Leaf(pod, "c1")
		kind        error
		errMentions string
	}{
		// The kubelet's systemd driver.
		{sd, "kubepods-burstable-pod1a.slice",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a.slice",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a.slice/crib-c1.scope", nil, ""},
		{sd, "kubepods.slice", "/kubepods.slice", "/kubepods.slice/crib-c1.scope", nil, ""},
		// crictl without a parent: a slice of its own under crib.slice.
		{sd, "", "/crib.slice/crib-pod" + podID + ".slice", "/crib.slice/crib-pod" + podID + ".slice/crib-c1.scope", nil, ""},
		{Paths{Driver: DriverSystemd, Root: "/test.slice/test-crib.slice"}, "",
			"/test.slice/test-crib.slice/test-crib-pod" + podID + ".slice", "/test.slice/test-crib.slice/test-crib-pod" + podID + ".slice/crib-c1.scope", nil, ""},
		// A path of slices, as containerd takes them.
		{sd, "/kubepods.slice/kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice/crib-c1.scope", nil, ""},
		{sd, "kubepods.slice/kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice/crib-c1.scope", nil, ""},
		// runc's slice:prefix:name, when it names a slice.
		{sd, "system.slice::system-crib.slice", "/system.slice/system-crib.slice", "/system.slice/system-crib.slice/crib-c1.scope", nil, ""},
		{sd, "::crib.slice", "/crib.slice", "/crib.slice/crib-c1.scope", nil, ""},
		{sd, "system.slice:crib:pod1", "", "", errdefs.ErrInvalidArgument, "names the scope crib-pod1.scope"},
		{sd, "system.slice:crib:other-x.slice", "", "", errdefs.ErrInvalidArgument, "not in system.slice"},
		// Not slices, or not valid ones.
		{sd, "/kubepods/burstable/pod1", "", "", errdefs.ErrFailedPrecondition, "cgroup_driver"},
		{sd, "pods/p1", "", "", errdefs.ErrFailedPrecondition, "cgroup_driver"},
		{sd, "/kubepods.slice/other.slice", "", "", errdefs.ErrFailedPrecondition, "not a systemd slice"},
		{sd, "/kubepods.slice/../x.slice", "", "", errdefs.ErrInvalidArgument, "escapes"},
		{sd, "kubepods--x.slice", "", "", errdefs.ErrInvalidArgument, `"kubepods--x.slice"`},
		{sd, "kube pods.slice", "", "", errdefs.ErrInvalidArgument, `"kube pods.slice"`},
		{sd, "kubepods@x.slice", "", "", errdefs.ErrInvalidArgument, `"kubepods@x.slice"`},
		{Paths{Driver: DriverSystemd, Root: "/crib-root"}, "", "", "", errdefs.ErrFailedPrecondition, "cgroup_root"},
		{Paths{Driver: "cgroupsv3"}, "", "", "", errdefs.ErrFailedPrecondition, "cgroup_driver"},
	}
	for _, tc := range tests {
		dir, err := tc.paths.Pod(tc.parent, podID)
		var leaf string
		if err == nil {
			leaf, err = tc.paths.Leaf(dir, "c1")
		}
		if tc.kind == nil {
			if err != nil || dir != tc.pod || leaf != tc.leaf {
				t.Errorf("%+v: Pod(%q) = %q, Leaf = %q, %v; want %q, %q", tc.paths, tc.parent, dir, leaf, err, tc.pod, tc.leaf)
			}
			if scope, _, err := ScopeOf(leaf); err == nil && scope != "crib-c1.scope" {
				t.Errorf("ScopeOf(%q) = %q", leaf, scope)
			} else if err != nil {
				t.Errorf("ScopeOf(%q): %v", leaf, err)
			}
			continue
		}
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.errMentions) {
			t.Errorf("%+v: Pod(%q) = %q, %v; want %v mentioning %q", tc.paths, tc.parent, dir, err, tc.kind, tc.errMentions)
		}
	}
	if got, err := (Paths{}).Pod("", podID); err != nil || got != "/crib/pod"+podID {
		t.Errorf("cgroupfs Pod(\"\") = %q, %v", got, err)
	}
	if got, err := (Paths{}).Pod("/kubepods/pod1", podID); err != nil || got != "/kubepods/pod1" {
		t.Errorf("cgroupfs Pod(/kubepods/pod1) = %q, %v", got, err)
	}
	for p, want := range map[string]bool{"/a/c1": true, "/a.slice/crib-c1.scope": true, "/a/pod1": false, "/a.slice/crib-c2.scope": false} {
		if IsLeaf(p, "c1") != want {
			t.Errorf("IsLeaf(%q, c1) != %v", p, want)
		}
	}
}
