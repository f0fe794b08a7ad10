package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/crib-runtime/crib/internal/mountinfo"
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
	err := mountinfo.Scan(r, []string{"cgroup", "cgroup2"}, func(m mountinfo.Mount) bool {
		root, mnt := m.Root, m.Mountpoint
		switch m.FSType {
		case "cgroup2":
			// Prefer /sys/fs/cgroup, then a mount of the root.
			if h.Unified == "" || mnt == "/sys/fs/cgroup" || (unifiedRoot != "/" && root == "/") {
				h.Unified, unifiedRoot = mnt, root
			}
		case "cgroup":
			hi := Hierarchy{Mountpoint: mnt, Root: root}
			for opt := range strings.SplitSeq(m.SuperOptions, ",") {
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
				return true
			}
			byOpts[key] = len(h.Hierarchies)
			h.Hierarchies = append(h.Hierarchies, hi)
		}
		return true
	})
	if errors.Is(err, mountinfo.ErrMalformed) {
		return nil, Invalidf("%s", err.Error())
	}
	if err != nil {
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
