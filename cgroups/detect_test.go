package cgroups

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

// hybridMountinfo is this project's development host.
const hybridMountinfo = `22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Host
	}{
		{"hybrid", hybridMountinfo, &Host{Mode: ModeHybrid, Unified: "/sys/fs/cgroup/unified", Hierarchies: []Hierarchy{
			{Mountpoint: "/sys/fs/cgroup/cpu", Root: "/", Controllers: []string{"cpu"}},
			{Mountpoint: "/sys/fs/cgroup/cpuacct", Root: "/", Controllers: []string{"cpuacct"}},
			{Mountpoint: "/sys/fs/cgroup/memory", Root: "/", Controllers: []string{"memory"}},
			{Mountpoint: "/sys/fs/cgroup/systemd", Root: "/", Name: "systemd"},
		}}},
		{"unified", "29 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
			&Host{Mode: ModeUnified, Unified: "/sys/fs/cgroup"}},
		{"unified with systemd-only v1 is unified",
			"29 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n30 22 0:27 / /run/sd rw - cgroup cgroup rw,name=systemd\n",
			&Host{Mode: ModeUnified, Unified: "/sys/fs/cgroup", Hierarchies: []Hierarchy{{Mountpoint: "/run/sd", Root: "/", Name: "systemd"}}}},
		{"legacy co-mounted, bind mount seen twice, escaped path",
			"1 0 0:1 /kubepods /mnt/cpu rw - cgroup cgroup rw,cpuacct,cpu\n" +
				"2 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n" +
				"3 0 0:2 / /sys/fs/cgroup/my\\040pids rw - cgroup cgroup rw,pids\n",
			&Host{Mode: ModeLegacy, Hierarchies: []Hierarchy{
				{Mountpoint: "/sys/fs/cgroup/cpu,cpuacct", Root: "/", Controllers: []string{"cpu", "cpuacct"}},
				{Mountpoint: "/sys/fs/cgroup/my pids", Root: "/", Controllers: []string{"pids"}},
			}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMountinfo(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseMountinfo (-want +got):\n%s", diff)
			}
		})
	}
	if got := (&Host{Hierarchies: []Hierarchy{{Mountpoint: "/a", Controllers: []string{"cpu", "cpuacct"}}}}).V1Controllers(); got["cpuacct"] != "/a" || got["cpu"] != "/a" {
		t.Errorf("V1Controllers = %v", got)
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	for _, in := range []string{"22 1 8:1 / / rw - ext4 /dev/vda rw\n", "garbage line\n"} {
		_, err := ParseMountinfo(strings.NewReader(in))
		if !errors.Is(err, errdefs.ErrFailedPrecondition) && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseMountinfo(%q) = %v, want a classified error", in, err)
		}
	}
}

func TestDetectThisHost(t *testing.T) {
	h, err := Detect("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	t.Logf("mode %s, unified %q, v1 %v", h.Mode, h.Unified, h.V1Controllers())
}
