// Package cgroupstest builds fake cgroup trees in t.TempDir() for unit tests:
// a cgroup2 mount, v1 hierarchies, or both (hybrid), with a mountinfo file
// that describes them and a cgfs.Fake that plays the kernel's part in mkdir
// and rmdir (creating and dropping interface files).
//
// Internal to crib; no API compatibility promised.
package cgroupstest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/cgroups/internal/cgfs"
)

// Tree is a fake cgroup file system.
type Tree struct {
	t testing.TB
	// Dir holds the mounts and the mountinfo file.
	Dir string
	// Unified is the fake cgroup2 mountpoint, "" if none.
	Unified string
	// V1 maps a hierarchy's mount options ("cpu,cpuacct", "name=systemd")
	// to its fake mountpoint.
	V1 map[string]string
	// Mountinfo is the path of a mountinfo file describing the mounts.
	Mountinfo string
	// Fake is what managers take (cgroup2.WithFake, cgroup1.WithFake).
	Fake *cgfs.Fake
	// DeviceWrites logs the writes to each v1 cgroup's devices.allow and
	// devices.deny (by directory) as "allow c 1:3 rwm", "deny a".
	DeviceWrites map[string][]string
	// FailDeviceWrite, when set, can refuse a devices.allow or
	// devices.deny write (as the kernel does with EPERM when a parent
	// denies the device).
	FailDeviceWrite func(dir, file, value string) error
	// DevicePrograms holds the v2 device program attached to each cgroup
	// directory, DeviceAttaches how many times one was attached there.
	DevicePrograms map[string][]byte
	DeviceAttaches map[string]int
	// FailAttachDevices, when set, is what attaching a device program
	// returns (as bpf(2) does without CAP_SYS_ADMIN: EPERM).
	FailAttachDevices error

	devices map[string]*devState
}

// NewV2 builds a pure cgroup2 tree whose root offers controllers.
func NewV2(t testing.TB, controllers ...string) *Tree {
	return build(t, true, controllers, nil)
}

// NewV1 builds a legacy tree with one hierarchy per entry of hierarchies,
// each the mount options naming its controllers ("cpu,cpuacct").
func NewV1(t testing.TB, hierarchies ...string) *Tree {
	return build(t, false, nil, hierarchies)
}

// NewHybrid builds v1 hierarchies plus an empty cgroup2 mount, like this
// project's development hosts.
func NewHybrid(t testing.TB, hierarchies ...string) *Tree {
	return build(t, true, nil, hierarchies)
}

func build(t testing.TB, unified bool, controllers, hierarchies []string) *Tree {
	t.Helper()
	tr := &Tree{t: t, Dir: t.TempDir(), V1: map[string]string{}, DeviceWrites: map[string][]string{},
		DevicePrograms: map[string][]byte{}, DeviceAttaches: map[string]int{}, devices: map[string]*devState{}}
	tr.Fake = &cgfs.Fake{Mkdir: tr.mkdir, Rmdir: tr.rmdir, AttachDevices: tr.attachDevices, Write: tr.write}
	var mi strings.Builder
	id := 30
	line := func(mnt, fstype, opts string) {
		id++
		fmt.Fprintf(&mi, "%d 23 0:%d / %s rw,relatime shared:%d - %s %s rw%s\n", id, id, mnt, id, fstype, fstype, opts)
	}
	for _, h := range hierarchies {
		mnt := filepath.Join(tr.Dir, strings.ReplaceAll(h, "=", "_"))
		tr.V1[h] = mnt
		tr.must(os.Mkdir(mnt, 0o755))
		tr.populateV1(mnt, h, true)
		line(mnt, "cgroup", ","+h)
	}
	if unified {
		tr.Unified = filepath.Join(tr.Dir, "unified")
		if len(hierarchies) == 0 {
			tr.Unified = filepath.Join(tr.Dir, "cgroup2")
		}
		tr.must(os.Mkdir(tr.Unified, 0o755))
		tr.populateV2(tr.Unified, controllers, true)
		line(tr.Unified, "cgroup2", "")
	}
	// Noise a parser must skip, with an escaped space in a path.
	mi.WriteString("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n")
	mi.WriteString("99 22 0:50 / /mnt/with\\040space rw - tmpfs tmpfs rw\n")
	tr.Mountinfo = filepath.Join(tr.Dir, "mountinfo")
	tr.must(os.WriteFile(tr.Mountinfo, []byte(mi.String()), 0o644))
	return tr
}

func (tr *Tree) must(err error) {
	if err != nil {
		tr.t.Helper()
		tr.t.Fatal(err)
	}
}

// v2Files are the interface files each v2 controller adds, with the values
// a new cgroup starts with.
var v2Files = map[string]map[string]string{
	"": {"cgroup.procs": "", "cgroup.kill": "", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0\n",
		"cgroup.subtree_control": "", "cgroup.max.depth": "max", "cgroup.max.descendants": "max"},
	"cpu": {"cpu.weight": "100\n", "cpu.max": "max 100000\n", "cpu.max.burst": "0\n", "cpu.idle": "0\n",
		"cpu.stat":     "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
		"cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"},
	"cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n", "cpuset.cpus.effective": "0-1\n"},
	"memory": {"memory.max": "max\n", "memory.swap.max": "max\n", "memory.high": "max\n", "memory.low": "0\n",
		"memory.min": "0\n", "memory.oom.group": "0\n", "memory.current": "0\n", "memory.stat": "anon 0\ninactive_file 0\n",
		"memory.events":   "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
		"memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"},
	"pids":    {"pids.max": "max\n", "pids.current": "0\n"},
	"hugetlb": {"hugetlb.2MB.max": "max\n", "hugetlb.1GB.max": "max\n"},
	"io":      {"io.weight": "default 100\n", "io.max": "", "io.pressure": ""},
}

func (tr *Tree) populateV2(dir string, controllers []string, isRoot bool) {
	for f, v := range v2Files[""] {
		tr.must(os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644))
	}
	tr.must(os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte(strings.Join(controllers, " ")+"\n"), 0o644))
	if isRoot {
		return // the root cgroup has no resource files
	}
	for _, c := range controllers {
		for f, v := range v2Files[c] {
			tr.must(os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644))
		}
	}
}

// v1Files are the interface files of each v1 controller.
var v1Files = map[string]map[string]string{
	"":        {"cgroup.procs": "", "tasks": "", "notify_on_release": "0\n", "cgroup.clone_children": "0\n"},
	"cpu":     {"cpu.shares": "1024\n", "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n", "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
	"cpuacct": {"cpuacct.usage": "0\n", "cpuacct.stat": "user 0\nsystem 0\n"},
	"cpuset":  {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
	"memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "9223372036854771712\n",
		"memory.usage_in_bytes": "0\n", "memory.stat": "total_rss 0\ntotal_inactive_file 0\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.swappiness": "60\n"},
	"pids":    {"pids.max": "max\n", "pids.current": "0\n"},
	"freezer": {"freezer.state": "THAWED\n"},
	"hugetlb": {"hugetlb.2MB.limit_in_bytes": "9223372036854771712\n"},
	"devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
	// No blkio.weight: like hosts whose disks use mq-deadline or none,
	// which have no weight files; tests add one where they need it.
	"blkio": {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
		"blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""},
}

func (tr *Tree) populateV1(dir, opts string, isRoot bool) {
	for f, v := range v1Files[""] {
		tr.must(os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644))
	}
	for c := range strings.SplitSeq(opts, ",") {
		for f, v := range v1Files[c] {
			if isRoot && c == "cpuset" {
				v = map[string]string{"cpuset.cpus": "0-1\n", "cpuset.mems": "0\n"}[f]
			}
			tr.must(os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644))
		}
	}
}

// mkdir plays the kernel: the new cgroup gets the core files and those of
// the controllers its parent enables (v2) or its hierarchy holds (v1).
func (tr *Tree) mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if tr.Unified != "" && strings.HasPrefix(dir, tr.Unified+"/") {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"))
		if err != nil {
			return err
		}
		var on []string
		for _, f := range strings.Fields(string(b)) {
			if c := strings.TrimPrefix(f, "+"); !slices.Contains(on, c) {
				on = append(on, c)
			}
		}
		tr.populateV2(dir, on, false)
		return nil
	}
	for opts, mnt := range tr.V1 {
		if strings.HasPrefix(dir, mnt+"/") {
			tr.populateV1(dir, opts, false)
			if tr.isDevicesCgroup(dir) {
				delete(tr.devices, dir)
				return os.WriteFile(filepath.Join(dir, "devices.list"), []byte(tr.devicesOf(dir).list()), 0o644)
			}
			return nil
		}
	}
	return fmt.Errorf("fake mkdir %s: not in a fake hierarchy", dir)
}

// rmdir removes a cgroup's files and the directory; like the kernel it
// refuses a cgroup with children (EBUSY) or processes.
func (tr *Tree) rmdir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			return &os.PathError{Op: "rmdir", Path: dir, Err: errBusy}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(strings.TrimSpace(string(b))) > 0 {
		return &os.PathError{Op: "rmdir", Path: dir, Err: errBusy}
	}
	delete(tr.devices, dir)
	delete(tr.DevicePrograms, dir)
	return os.RemoveAll(dir)
}

// Path returns the file-system path of cgroup cg in the hierarchy mounted
// at mnt (Unified or a V1 entry).
func Path(mnt, cg string) string { return filepath.Join(mnt, filepath.FromSlash(cg)) }

// Read returns the content of file in cgroup cg of hierarchy mnt, trimmed.
func (tr *Tree) Read(mnt, cg, file string) string {
	tr.t.Helper()
	b, err := os.ReadFile(filepath.Join(Path(mnt, cg), file))
	tr.must(err)
	return strings.TrimSpace(string(b))
}

// Write sets file in cgroup cg of hierarchy mnt, e.g. to seed stat files.
func (tr *Tree) Write(mnt, cg, file, content string) {
	tr.t.Helper()
	tr.must(os.WriteFile(filepath.Join(Path(mnt, cg), file), []byte(content), 0o644))
}

// Remove deletes file from cgroup cg, as on a kernel without that feature.
func (tr *Tree) Remove(mnt, cg, file string) {
	tr.t.Helper()
	tr.must(os.Remove(filepath.Join(Path(mnt, cg), file)))
}

// Exists reports whether cgroup cg exists in hierarchy mnt.
func (tr *Tree) Exists(mnt, cg string) bool {
	_, err := os.Stat(Path(mnt, cg))
	return err == nil
}

// HostFile reads file of controller in cgroup cg on the real host, for
// integration tests; the hierarchy is the unified one on v2 hosts.
func HostFile(t testing.TB, host *cgroups.Host, controller, cg, file string) string {
	t.Helper()
	dir := host.Unified
	if host.Mode != cgroups.ModeUnified {
		dir = host.V1Controllers()[controller]
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(cg), file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
