package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Mode is the kind of cgroup hierarchy a host runs.
type Mode uint8

// Modes, as systemd and runc name them.
const (
	ModeUnknown Mode = iota
	// ModeUnified: only cgroup2 (usually at /sys/fs/cgroup).
	ModeUnified
	// ModeHybrid: v1 controller hierarchies plus a cgroup2 mount (usually
	// /sys/fs/cgroup/unified) holding few or no controllers.
	ModeHybrid
	// ModeLegacy: v1 hierarchies only.
	ModeLegacy
)

func (m Mode) String() string {
	switch m {
	case ModeUnified:
		return "unified"
	case ModeHybrid:
		return "hybrid"
	case ModeLegacy:
		return "legacy"
	}
	return "unknown"
}

// Hierarchy is one mounted cgroup v1 hierarchy.
type Hierarchy struct {
	// Mountpoint is where the hierarchy is mounted.
	Mountpoint string
	// Root is the cgroup the mount shows at Mountpoint ("/" unless it is
	// a bind mount of a sub-cgroup or seen from a cgroup namespace).
	Root string
	// Controllers mounted together, e.g. ["cpu" "cpuacct"]; empty for a
	// named hierarchy.
	Controllers []string
	// Name of a named hierarchy ("systemd" for name=systemd), else "".
	Name string
}

// Host is what Detect found in mountinfo.
type Host struct {
	Mode Mode
	// Unified is the cgroup2 mountpoint, or "" when cgroup2 is not mounted.
	Unified string
	// Hierarchies are the v1 hierarchies, one per distinct hierarchy.
	Hierarchies []Hierarchy
}

// V1Controllers maps each mounted v1 controller to its mountpoint. Named
// hierarchies appear as "name=<name>".
func (h *Host) V1Controllers() map[string]string {
	m := make(map[string]string)
	for _, hi := range h.Hierarchies {
		for _, c := range hi.Controllers {
			m[c] = hi.Mountpoint
		}
		if hi.Name != "" {
			m["name="+hi.Name] = hi.Mountpoint
		}
	}
	return m
}

// Detect reads a mountinfo file (normally /proc/self/mountinfo) and reports
// which cgroup hierarchies the host has mounted.
func Detect(mountinfoPath string) (*Host, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, fmt.Errorf("detect cgroup mode: %w", err)
	}
	defer f.Close()
	h, err := ParseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("detect cgroup mode from %s: %w", mountinfoPath, err)
	}
	return h, nil
}

// ParseMountinfo parses proc(5) mountinfo lines:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Only cgroup and cgroup2 mounts matter. A hierarchy mounted twice is
// reported once, preferring the mount that shows its root.
func ParseMountinfo(r io.Reader) (*Host, error) {
	h := &Host{}
	byOpts := map[string]int{} // controllers key → index in h.Hierarchies
	unifiedRoot := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, Invalidf("mountinfo line %q: no separator", line)
		}
		fields := strings.Fields(pre)
		after := strings.Fields(post)
		if len(fields) < 5 || len(after) < 3 {
			return nil, Invalidf("mountinfo line %q: too few fields", line)
		}
		fstype, root, mnt := after[0], unescapeMount(fields[3]), unescapeMount(fields[4])
		switch fstype {
		case "cgroup2":
			// Prefer /sys/fs/cgroup, then a mount of the root.
			if h.Unified == "" || mnt == "/sys/fs/cgroup" || (unifiedRoot != "/" && root == "/") {
				h.Unified, unifiedRoot = mnt, root
			}
		case "cgroup":
			hi := Hierarchy{Mountpoint: mnt, Root: root}
			for opt := range strings.SplitSeq(after[2], ",") {
				switch {
				case strings.HasPrefix(opt, "name="):
					hi.Name = strings.TrimPrefix(opt, "name=")
				case isV1Controller(opt):
					hi.Controllers = append(hi.Controllers, opt)
				}
			}
			sort.Strings(hi.Controllers)
			key := strings.Join(hi.Controllers, ",") + "|" + hi.Name
			if i, seen := byOpts[key]; seen {
				if h.Hierarchies[i].Root != "/" && root == "/" {
					h.Hierarchies[i] = hi
				}
				continue
			}
			byOpts[key] = len(h.Hierarchies)
			h.Hierarchies = append(h.Hierarchies, hi)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	withControllers := false
	for _, hi := range h.Hierarchies {
		if len(hi.Controllers) > 0 {
			withControllers = true
		}
	}
	switch {
	case withControllers && h.Unified != "":
		h.Mode = ModeHybrid
	case withControllers:
		h.Mode = ModeLegacy
	case h.Unified != "":
		h.Mode = ModeUnified
	default:
		return nil, Preconditionf("no cgroup or cgroup2 filesystem mounted")
	}
	return h, nil
}

// v1Controllers are the controllers a v1 "cgroup" mount option can name;
// everything else (rw, relatime, nsdelegate, …) is a plain mount option.
var v1Controllers = map[string]bool{
	"cpu": true, "cpuacct": true, "cpuset": true, "memory": true,
	"devices": true, "freezer": true, "blkio": true, "pids": true,
	"hugetlb": true, "net_cls": true, "net_prio": true, "perf_event": true,
	"rdma": true, "misc": true,
}

func isV1Controller(opt string) bool { return v1Controllers[opt] }

// unescapeMount undoes the octal escapes (\040 for space, \011, \012, \134)
// the kernel uses in mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}
