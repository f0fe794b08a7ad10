package shim_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	occgroups "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/runtime/shimapi"
)

// TestKubeletHugetlbLimits: the kubelet sends a zero hugetlb limit for every
// huge page size the kernel offers on every container. Where the host has no
// hugetlb controller (this project's v1 hosts) the containers still run, and
// the pod's shim warns once, not once per container.
func TestKubeletHugetlbLimits(t *testing.T) {
	p := newPod(t)
	sizes := occgroups.HugePageSizes() // what the kubelet calls
	for range 2 {
		id := randomID()
		spec := p.spec(id, "/bin/true")
		spec.Linux.Resources = &specs.LinuxResources{}
		for _, s := range sizes {
			spec.Linux.Resources.HugepageLimits = append(spec.Linux.Resources.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: s})
		}
		p.create(id, spec)
		if _, err := p.client.Start(t.Context(), &shimapi.ContainerRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		if st := p.wait(id); st.ExitCode != 0 {
			t.Fatalf("state %v, want exit 0", st)
		}
	}
	log, err := os.ReadFile(filepath.Join(p.groupDir, shimapi.LogName))
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(log), "Skipped cgroup limits the host cannot apply")
	want := 0
	if len(sizes) > 0 && !hostHasHugetlb(t) {
		want = 1
	}
	for l := range strings.SplitSeq(string(log), "\n") {
		if strings.Contains(l, "Skipped cgroup limits") {
			t.Logf("shim: %s", l)
		}
	}
	if n != want {
		t.Errorf("shim warned %d times of skipped limits, want %d; shim log:\n%s", n, want, log)
	}
}

func hostHasHugetlb(t *testing.T) bool {
	host, err := cgroups.Detect("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if host.Mode != cgroups.ModeUnified {
		return host.V1Controllers()["hugetlb"] != ""
	}
	b, _ := os.ReadFile(host.Unified + "/cgroup.controllers")
	return slices.Contains(strings.Fields(string(b)), "hugetlb")
}
