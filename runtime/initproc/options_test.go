package initproc

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

func TestParseMountOptions(t *testing.T) {
	o, err := parseMountOptions([]string{"rbind", "ro", "nosuid", "rw", "rslave", "rro", "mode=755", "size=1k"})
	if err != nil {
		t.Fatal(err)
	}
	if want := uintptr(unix.MS_BIND | unix.MS_REC | unix.MS_NOSUID); o.flags != want {
		t.Errorf("flags %#x, want %#x (rw after ro clears it)", o.flags, want)
	}
	if len(o.propagation) != 1 || o.propagation[0] != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("propagation %v", o.propagation)
	}
	if o.attrSet != unix.MOUNT_ATTR_RDONLY || o.attrClr != 0 {
		t.Errorf("attrs set %#x clear %#x", o.attrSet, o.attrClr)
	}
	if diff := cmp.Diff([]string{"mode=755", "size=1k"}, o.data); diff != "" {
		t.Errorf("data (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"idmap", "tmpcopyup", "a,b"} {
		if _, err := parseMountOptions([]string{bad}); err == nil {
			t.Errorf("option %q accepted", bad)
		}
	}
}

func TestOverlayData(t *testing.T) {
	fs := initmsg.Rootfs{
		Lower: []string{"/var/lib/crib/l/2", "/var/lib/crib/l/1"},
		Upper: "/var/lib/crib/c/upper", Work: "/var/lib/crib/c/work",
	}
	if got, want := overlayData(fs, ""), "lowerdir=/var/lib/crib/l/2:/var/lib/crib/l/1,upperdir=/var/lib/crib/c/upper,workdir=/var/lib/crib/c/work"; got != want {
		t.Errorf("absolute: %q", got)
	}
	dirs := append(append([]string{}, fs.Lower...), fs.Upper, fs.Work)
	common := commonDir(dirs)
	if common != "/var/lib/crib" {
		t.Errorf("commonDir = %q", common)
	}
	if got, want := overlayData(fs, common), "lowerdir=l/2:l/1,upperdir=c/upper,workdir=c/work"; got != want {
		t.Errorf("relative: %q", got)
	}
}

// The cgroup v1 view is made of the hierarchies mounted right under
// /sys/fs/cgroup, each once, with their controllers and names but none of
// the mount's other options.
func TestCgroupMountsFrom(t *testing.T) {
	in := `25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpuacct,cpu,clone_children
28 25 0:26 /kubepods /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory,release_agent=/x
29 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
30 1 0:26 / /mnt/memory rw - cgroup cgroup rw,memory
31 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`
	got, err := CgroupMountsFrom(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []initmsg.CgroupMount{
		{MountPoint: "/sys/fs/cgroup/unified", Root: "/", FSType: "cgroup2"},
		{MountPoint: "/sys/fs/cgroup/cpu,cpuacct", Root: "/", FSType: "cgroup", Controllers: []string{"cpu", "cpuacct"}},
		{MountPoint: "/sys/fs/cgroup/memory", Root: "/kubepods", FSType: "cgroup", Controllers: []string{"memory"}},
		{MountPoint: "/sys/fs/cgroup/systemd", Root: "/", FSType: "cgroup", Controllers: []string{"name=systemd"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CgroupMountsFrom (-want +got):\n%s", diff)
	}
	if _, err := CgroupMountsFrom(strings.NewReader("garbage\n")); err == nil {
		t.Error("CgroupMountsFrom accepted a malformed line")
	}
}

// TestSysctlNamespaceMatchesTheDaemon: the init accepts every IPC key the
// daemon accepted at RunPodSandbox (the kubelet's prefixes), not a shorter
// list of its own.
func TestSysctlNamespaceMatchesTheDaemon(t *testing.T) {
	for name, want := range map[string]specs.LinuxNamespaceType{
		"kernel.shm_next_id": specs.IPCNamespace, "kernel.msg_next_id": specs.IPCNamespace, "kernel.sem": specs.IPCNamespace,
		"fs.mqueue.msg_max": specs.IPCNamespace, "net.ipv4.conf.eth0.rp_filter": specs.NetworkNamespace,
		"kernel.hostname": specs.UTSNamespace, "kernel.core_pattern": "", "vm.overcommit_memory": "",
	} {
		if got := sysctlNamespace(name); got != want {
			t.Errorf("sysctlNamespace(%q) = %q, want %q", name, got, want)
		}
	}
}
