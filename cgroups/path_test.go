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
