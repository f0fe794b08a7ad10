package rdt

import (
	"fmt"
	"io/fs"
	"maps"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fakeHost is a resctrl mount for tests: a plain directory shaped like
// /sys/fs/resctrl behind an fsys that rejects what the kernel rejects
// (arch/x86/kernel/cpu/resctrl: schemata syntax and mask rules, CLOSID and
// RMID exhaustion, task moves) and writes info/last_cmd_status as it does.
// It validates independently of the package's own checks, so a bug in
// those shows up as a kernel error here.
type fakeHost struct {
	root   string
	spec   hostSpec
	mounts string // mountinfo path naming root

	mu    sync.Mutex
	tasks map[string]map[int]bool // group dir ("" = root) → pids
	// writes counts schemata writes per group, to see what a reload touched.
	writes map[string]int
}

// hostSpec describes the hardware a fakeHost shows.
type hostSpec struct {
	mountOpts string // super options, e.g. "rw,cdp"
	caches    []CacheInfo
	mb        *MBInfo
	mon       *MonInfo
}

// The host shapes the tests use, after real machines: a Broadwell-era
// server with L3 CAT only; a Skylake-SP with CAT, MBA and monitoring; and
// a CAT host mounted with CDP.
func catOnlyHost() hostSpec {
	return hostSpec{mountOpts: "rw", caches: []CacheInfo{{Name: "L3", CBMMask: 0x7ff, MinCBMBits: 1, NumCLOSIDs: 16, Domains: []int{0, 1}}}}
}

func fullHost() hostSpec {
	return hostSpec{
		mountOpts: "rw",
		caches:    []CacheInfo{{Name: "L3", CBMMask: 0xfff, MinCBMBits: 2, NumCLOSIDs: 16, ShareableBits: 0xc00, Domains: []int{0, 1}}},
		mb:        &MBInfo{BandwidthGran: 10, MinBandwidth: 10, DelayLinear: true, NumCLOSIDs: 8, Domains: []int{0, 1}},
		mon:       &MonInfo{NumRMIDs: 16, Features: []string{"llc_occupancy", "mbm_local_bytes", "mbm_total_bytes"}},
	}
}

func cdpHost() hostSpec {
	return hostSpec{mountOpts: "rw,cdp", caches: []CacheInfo{
		{Name: "L3CODE", CBMMask: 0x7ff, MinCBMBits: 1, NumCLOSIDs: 8, Domains: []int{0}},
		{Name: "L3DATA", CBMMask: 0x7ff, MinCBMBits: 1, NumCLOSIDs: 8, Domains: []int{0}},
	}}
}

func mbpsHost() hostSpec {
	h := fullHost()
	h.mountOpts = "rw,mba_MBps"
	return h
}

// writeMountinfo writes a mountinfo file with the usual mounts and, when
// resctrlAt is not empty, a resctrl mount there with opts.
func writeMountinfo(t *testing.T, resctrlAt, opts string) string {
	t.Helper()
	lines := []string{
		"22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw",
		"25 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw",
		"30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate",
	}
	if resctrlAt != "" {
		mp := strings.ReplaceAll(resctrlAt, " ", `\040`)
		lines = append(lines, "45 25 0:40 / "+mp+" rw,relatime shared:25 - resctrl resctrl "+opts)
	}
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newFakeHost builds the tree for spec under a temporary directory (with a
// space in its name, as mountinfo escapes those).
func newFakeHost(t *testing.T, spec hostSpec) *fakeHost {
	t.Helper()
	root := filepath.Join(t.TempDir(), "res ctrl")
	h := &fakeHost{root: root, spec: spec, tasks: map[string]map[int]bool{"": {}}, writes: map[string]int{}}
	files := map[string]string{"info/last_cmd_status": "ok\n", "tasks": ""}
	for _, c := range spec.caches {
		d := "info/" + c.Name + "/"
		files[d+"cbm_mask"] = fmt.Sprintf("%x\n", c.CBMMask)
		files[d+"min_cbm_bits"] = fmt.Sprintf("%d\n", c.MinCBMBits)
		files[d+"num_closids"] = fmt.Sprintf("%d\n", c.NumCLOSIDs)
		files[d+"shareable_bits"] = fmt.Sprintf("%x\n", c.ShareableBits)
	}
	if mb := spec.mb; mb != nil {
		files["info/MB/bandwidth_gran"] = fmt.Sprintf("%d\n", mb.BandwidthGran)
		files["info/MB/min_bandwidth"] = fmt.Sprintf("%d\n", mb.MinBandwidth)
		files["info/MB/num_closids"] = fmt.Sprintf("%d\n", mb.NumCLOSIDs)
		files["info/MB/delay_linear"] = map[bool]string{true: "1\n", false: "0\n"}[mb.DelayLinear]
	}
	if mon := spec.mon; mon != nil {
		files["info/L3_MON/num_rmids"] = fmt.Sprintf("%d\n", mon.NumRMIDs)
		files["info/L3_MON/mon_features"] = strings.Join(mon.Features, "\n") + "\n"
	}
	files["schemata"] = h.fullSchemata()
	for name, content := range files {
		h.mustWrite(t, name, content)
	}
	if spec.mon != nil {
		h.mustWrite(t, "mon_groups/.keep", "")
		os.Remove(filepath.Join(root, "mon_groups/.keep"))
		h.makeMonData(t, "")
	}
	h.mounts = writeMountinfo(t, root, spec.mountOpts)
	return h
}

func (h *fakeHost) mustWrite(t *testing.T, name, content string) {
	t.Helper()
	p := filepath.Join(h.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *fakeHost) makeMonData(t *testing.T, dir string) {
	if err := h.monData(dir); err != nil {
		t.Fatal(err)
	}
}

// monData fills <dir>/mon_data/mon_L3_XX with counters; domain 1 answers
// "Unavailable" for mbm_local_bytes, as a fresh RMID can.
func (h *fakeHost) monData(dir string) error {
	for _, id := range h.spec.caches[0].Domains {
		d := filepath.Join(h.root, dir, "mon_data", fmt.Sprintf("mon_L3_%02d", id))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		for i, f := range h.spec.mon.Features {
			v := strconv.Itoa((id+1)*1000 + i)
			if id == 1 && f == "mbm_local_bytes" {
				v = "Unavailable"
			}
			if err := os.WriteFile(filepath.Join(d, f), []byte(v+"\n"), 0o444); err != nil {
				return err
			}
		}
	}
	return nil
}

// fullSchemata is what the kernel shows in a new group, names padded.
func (h *fakeHost) fullSchemata() string {
	var b strings.Builder
	for _, c := range h.spec.caches {
		fmt.Fprintf(&b, "%6s:", c.Name)
		for i, id := range c.Domains {
			fmt.Fprintf(&b, "%s%d=%x", map[bool]string{true: ";"}[i > 0], id, c.CBMMask)
		}
		b.WriteByte('\n')
	}
	if mb := h.spec.mb; mb != nil {
		full := uint64(100)
		if strings.Contains(h.spec.mountOpts, "mba_MBps") {
			full = mbpsMax
		}
		fmt.Fprintf(&b, "%6s:", "MB")
		for i, id := range mb.Domains {
			fmt.Fprintf(&b, "%s%d=%d", map[bool]string{true: ";"}[i > 0], id, full)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// newFS is the factory open takes.
func (h *fakeHost) newFS(root string) fsys {
	if root != h.root {
		panic("resctrl mount " + root + " is not the fake's " + h.root)
	}
	return h
}

// open opens a Controller on the fake host.
func (h *fakeHost) open(t *testing.T, cfg Config) *Controller {
	t.Helper()
	c, err := open(h.mounts, cfg, h.newFS)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return c
}

func (h *fakeHost) path(name string) string { return filepath.Join(h.root, name) }

func (h *fakeHost) ReadFile(name string) ([]byte, error) { return os.ReadFile(h.path(name)) }

func (h *fakeHost) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(h.path(name)) }

// fail sets last_cmd_status and returns errno as write(2) would.
func (h *fakeHost) fail(op, name string, errno syscall.Errno, status string) error {
	os.WriteFile(h.path("info/last_cmd_status"), []byte(status+"\n"), 0o644)
	return &fs.PathError{Op: op, Path: h.path(name), Err: errno}
}

func (h *fakeHost) ok() { os.WriteFile(h.path("info/last_cmd_status"), []byte("ok\n"), 0o644) }

// groupKind classifies a directory: "ctrl" (top level, or the root ""),
// "mon" (<ctrl>/mon_groups/<name>) or "" (anything else).
func groupKind(dir string) (kind, parent string) {
	parts := strings.Split(dir, "/")
	switch {
	case dir == "":
		return "ctrl", ""
	case len(parts) == 1 && parts[0] != "info" && parts[0] != "mon_groups" && parts[0] != "mon_data":
		return "ctrl", ""
	case len(parts) == 2 && parts[0] == "mon_groups":
		return "mon", ""
	case len(parts) == 3 && parts[1] == "mon_groups":
		return "mon", parts[0]
	}
	return "", ""
}

func (h *fakeHost) WriteFile(name string, data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := os.Stat(h.path(name)); err != nil {
		return err
	}
	dir, base := path.Dir(name), path.Base(name)
	if dir == "." {
		dir = ""
	}
	h.ok()
	switch base {
	case "schemata":
		return h.writeSchemata(name, dir, string(data))
	case "tasks":
		return h.writeTask(name, dir, string(data))
	}
	return &fs.PathError{Op: "write", Path: h.path(name), Err: syscall.EACCES}
}

// writeSchemata follows rdtgroup_schemata_write: a trailing newline,
// "<resource>:<id>=<value>;…" lines, known resources and domains, valid
// values; lines and domains not written keep their value.
func (h *fakeHost) writeSchemata(name, dir, data string) error {
	if data == "" || !strings.HasSuffix(data, "\n") {
		return &fs.PathError{Op: "write", Path: h.path(name), Err: syscall.EINVAL}
	}
	cur, err := os.ReadFile(h.path(name))
	if err != nil {
		return err
	}
	vals := map[string]map[int]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(cur)), "\n") {
		res, rest, _ := strings.Cut(strings.TrimSpace(l), ":")
		vals[res] = map[int]string{}
		for _, d := range strings.Split(rest, ";") {
			id, v, _ := strings.Cut(d, "=")
			n, _ := strconv.Atoi(id)
			vals[res][n] = v
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		res, rest, ok := strings.Cut(strings.TrimSpace(l), ":")
		if !ok {
			return h.fail("write", name, syscall.EINVAL, "Missing ':'")
		}
		if _, known := vals[res]; !known {
			return h.fail("write", name, syscall.EINVAL, fmt.Sprintf("Unknown or unsupported resource name '%s'", res))
		}
		for _, d := range strings.Split(rest, ";") {
			id, v, ok := strings.Cut(strings.TrimSpace(d), "=")
			n, err := strconv.Atoi(id)
			if !ok || err != nil {
				return h.fail("write", name, syscall.EINVAL, "Missing '=' or non-numeric domain")
			}
			if _, known := vals[res][n]; !known {
				return h.fail("write", name, syscall.EINVAL, "Unknown domain")
			}
			canon, msg := h.checkValue(res, v)
			if msg != "" {
				return h.fail("write", name, syscall.EINVAL, msg)
			}
			vals[res][n] = canon
		}
	}
	var b strings.Builder
	for _, c := range h.spec.caches {
		b.WriteString(fakeLine(c.Name, vals[c.Name]))
	}
	if h.spec.mb != nil {
		b.WriteString(fakeLine("MB", vals["MB"]))
	}
	h.writes[dir]++
	return os.WriteFile(h.path(name), []byte(b.String()), 0o644)
}

func fakeLine(res string, vals map[int]string) string {
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(vals)) {
		parts = append(parts, fmt.Sprintf("%d=%s", id, vals[id]))
	}
	return fmt.Sprintf("%6s:%s\n", res, strings.Join(parts, ";"))
}

// checkValue is cbm_validate and bw_validate: it returns the value as the
// kernel stores it, or last_cmd_status's message.
func (h *fakeHost) checkValue(res, v string) (string, string) {
	if res == "MB" {
		bw, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return "", "Non-decimal digit in MB value " + v
		}
		if strings.Contains(h.spec.mountOpts, "mba_MBps") {
			return strconv.FormatUint(bw, 10), ""
		}
		mb := h.spec.mb
		if bw < uint64(mb.MinBandwidth) || bw > 100 {
			return "", fmt.Sprintf("MB value %d out of range [%d,%d]", bw, mb.MinBandwidth, 100)
		}
		g := uint64(mb.BandwidthGran)
		return strconv.FormatUint((bw+g-1)/g*g, 10), ""
	}
	var c CacheInfo
	for _, ci := range h.spec.caches {
		if ci.Name == res {
			c = ci
		}
	}
	m, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return "", "Non-hex character in the mask " + v
	}
	if m == 0 || m > c.CBMMask {
		return "", "Mask out of range"
	}
	first := bits.TrailingZeros64(m)
	run := bits.TrailingZeros64(^(m >> first))
	if m>>(first+run) != 0 {
		return "", fmt.Sprintf("The mask %x has non-consecutive 1-bits", m)
	}
	if run < c.MinCBMBits {
		return "", fmt.Sprintf("Need at least %d bits in the mask", c.MinCBMBits)
	}
	return strconv.FormatUint(m, 16), ""
}

// writeTask follows rdtgroup_tasks_write: one pid per write; a task enters
// a monitoring group only from that group's control group.
func (h *fakeHost) writeTask(name, dir, data string) error {
	pid, err := strconv.Atoi(strings.TrimSpace(data))
	if err != nil {
		return h.fail("write", name, syscall.EINVAL, "Task list parsing error")
	}
	if pid <= 0 {
		return h.fail("write", name, syscall.ESRCH, fmt.Sprintf("No task %d", pid))
	}
	kind, parent := groupKind(dir)
	if kind == "mon" {
		if !h.tasks[parent][pid] {
			return h.fail("write", name, syscall.EINVAL, "Can't move task to different control group")
		}
	} else {
		for _, set := range h.tasks {
			delete(set, pid)
		}
	}
	for g, set := range h.tasks {
		if k, p := groupKind(g); k == "mon" && p == parent && kind == "mon" {
			delete(set, pid)
		}
	}
	if h.tasks[dir] == nil {
		h.tasks[dir] = map[int]bool{}
	}
	h.tasks[dir][pid] = true
	return nil
}

// ctrlGroups counts control groups, the root included.
func (h *fakeHost) ctrlGroups() int {
	ents, _ := os.ReadDir(h.root)
	n := 1
	for _, e := range ents {
		if k, _ := groupKind(e.Name()); e.IsDir() && k == "ctrl" {
			n++
		}
	}
	return n
}

// rmidsUsed counts RMIDs: one per control group and per monitoring group.
func (h *fakeHost) rmidsUsed() int {
	n := 0
	filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(h.root, p)
		if rel == "." {
			rel = ""
		}
		if k, _ := groupKind(rel); d.IsDir() && k != "" {
			n++
		}
		return nil
	})
	return n
}

func (h *fakeHost) closids() int {
	n := 0
	for _, c := range h.spec.caches {
		if n == 0 || c.NumCLOSIDs < n {
			n = c.NumCLOSIDs
		}
	}
	if h.spec.mb != nil && h.spec.mb.NumCLOSIDs < n {
		n = h.spec.mb.NumCLOSIDs
	}
	return n
}

// Mkdir follows rdtgroup_mkdir: control groups at the top, monitoring
// groups under mon_groups, ENOSPC when CLOSIDs or RMIDs run out.
func (h *fakeHost) Mkdir(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ok()
	kind, _ := groupKind(name)
	if _, err := os.Stat(h.path(name)); err == nil {
		return &fs.PathError{Op: "mkdir", Path: h.path(name), Err: syscall.EEXIST}
	}
	switch {
	case kind == "ctrl":
		if h.ctrlGroups() >= h.closids() {
			return h.fail("mkdir", name, syscall.ENOSPC, "Out of CLOSIDs")
		}
	case kind == "mon" && h.spec.mon != nil:
		if h.rmidsUsed() >= h.spec.mon.NumRMIDs {
			return h.fail("mkdir", name, syscall.ENOSPC, "Out of RMIDs")
		}
	default:
		return &fs.PathError{Op: "mkdir", Path: h.path(name), Err: syscall.EPERM}
	}
	if err := os.MkdirAll(h.path(name), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(h.path(name+"/tasks"), nil, 0o644); err != nil {
		return err
	}
	if kind == "ctrl" {
		if err := os.WriteFile(h.path(name+"/schemata"), []byte(h.fullSchemata()), 0o644); err != nil {
			return err
		}
		if h.spec.mon != nil {
			os.Mkdir(h.path(name+"/mon_groups"), 0o755)
		}
	}
	h.tasks[name] = map[int]bool{}
	if h.spec.mon != nil {
		return h.monData(name)
	}
	return nil
}

// Remove follows rdtgroup_rmdir: the group's tasks go to its parent (the
// root for a control group, with its monitoring groups removed too).
func (h *fakeHost) Remove(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	kind, parent := groupKind(name)
	if name == "" || kind == "" {
		return &fs.PathError{Op: "rmdir", Path: h.path(name), Err: syscall.EPERM}
	}
	if _, err := os.Stat(h.path(name)); err != nil {
		return err
	}
	for g, set := range h.tasks {
		if g == name || strings.HasPrefix(g, name+"/") {
			for pid := range set {
				h.tasks[parent][pid] = true
			}
			delete(h.tasks, g)
		}
	}
	return os.RemoveAll(h.path(name))
}

// group returns a group's tasks and its schemata with the padding removed.
func (h *fakeHost) group(t *testing.T, dir string) (pids []int, schemata string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := os.ReadFile(h.path(groupFile(dir, "schemata")))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return slices.Sorted(maps.Keys(h.tasks[dir])), strings.Join(lines, "\n")
}

// exists reports whether a directory exists in the tree.
func (h *fakeHost) exists(name string) bool {
	_, err := os.Stat(h.path(name))
	return err == nil
}
