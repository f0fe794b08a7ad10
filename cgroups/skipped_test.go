package cgroups

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWithoutHugetlb(t *testing.T) {
	r := &Resources{CPUWeight: ptr[uint64](1), HugetlbMaxBytes: map[string]int64{"2MB": 0, "1GB": Max}}
	got, sk := WithoutHugetlb("/p/c", r, "no hugetlb here")
	want := &Skipped{Controller: "hugetlb", Cgroup: "/p/c", Files: []string{"hugetlb.1GB.max=max", "hugetlb.2MB.max=0"}, Reason: "no hugetlb here"}
	if diff := cmp.Diff(want, sk); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
	if got.HugetlbMaxBytes != nil || got.CPUWeight == nil || *got.CPUWeight != 1 {
		t.Errorf("kept %+v; want the CPU weight without hugetlb", got)
	}
	if len(r.HugetlbMaxBytes) != 2 {
		t.Errorf("the caller's resources changed: %v", r.HugetlbMaxBytes)
	}
	for _, r := range []*Resources{nil, {CPUWeight: ptr[uint64](1)}} {
		if got, sk := WithoutHugetlb("/p/c", r, "x"); got != r || sk != nil {
			t.Errorf("WithoutHugetlb(%+v) = %+v, %+v; want it unchanged and nothing skipped", r, got, sk)
		}
	}
}

func TestSkipNotifierOncePerController(t *testing.T) {
	var got []string
	n := NewSkipNotifier(func(s Skipped) { got = append(got, s.Controller+" "+s.Cgroup) })
	for _, s := range []Skipped{
		{Controller: "hugetlb", Cgroup: "/a"}, {Controller: "hugetlb", Cgroup: "/b"},
		{Controller: "rdma", Cgroup: "/b"}, {Controller: "hugetlb", Cgroup: "/c"},
	} {
		n.Notify(s)
	}
	if diff := cmp.Diff([]string{"hugetlb /a", "rdma /b"}, got); diff != "" {
		t.Errorf("notices (-want +got):\n%s", diff)
	}
	// Nobody listening is not an error.
	NewSkipNotifier(nil).Notify(Skipped{Controller: "hugetlb"})
	var none *SkipNotifier
	none.Notify(Skipped{Controller: "hugetlb"})
}
