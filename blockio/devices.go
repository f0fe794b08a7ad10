package blockio

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// devNum is a block device's major:minor.
type devNum struct{ major, minor int64 }

func (d devNum) String() string { return fmt.Sprintf("%d:%d", d.major, d.minor) }

// host is where device paths are resolved; tests replace it.
type host struct {
	glob func(pattern string) ([]string, error)
	// stat describes the file at path after following symlinks: block
	// says it is a block device node, dev its number.
	stat func(path string) (dev devNum, block bool, err error)
	// isPartition says whether the block device is a partition
	// (/sys/dev/block/MAJ:MIN/partition exists).
	isPartition func(dev devNum) bool
}

// osHost is the node itself.
var osHost = host{
	glob: filepath.Glob,
	stat: func(path string) (devNum, bool, error) {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return devNum{}, false, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		d := devNum{int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))} //nolint:unconvert // Rdev's type differs by arch
		return d, st.Mode&unix.S_IFMT == unix.S_IFBLK, nil
	},
	isPartition: func(d devNum) bool {
		_, err := os.Stat("/sys/dev/block/" + d.String() + "/partition")
		return err == nil
	},
}

// resolve expands globs (symlinks followed, as /dev/disk/by-id/* are) to
// the whole-disk block devices they name. Each pattern must match, each
// match must be such a device: a class that silently throttled nothing
// would be worse than none.
func (h host) resolve(patterns []string) ([]devNum, error) {
	var out []devNum
	var errs []string
	for _, p := range patterns {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Sprintf("device %q: want an absolute path or glob", p))
			continue
		}
		matches, err := h.glob(p)
		if err != nil {
			errs = append(errs, fmt.Sprintf("device %q: %v", p, err))
			continue
		}
		if len(matches) == 0 {
			errs = append(errs, fmt.Sprintf("device %q: no such file", p))
			continue
		}
		for _, m := range matches {
			d, block, err := h.stat(m)
			switch {
			case err != nil:
				errs = append(errs, fmt.Sprintf("device %q: %v", m, err))
			case !block:
				errs = append(errs, fmt.Sprintf("device %q: not a block device", m))
			case h.isPartition(d):
				errs = append(errs, fmt.Sprintf("device %q (%s): a partition; block I/O limits apply to whole disks", m, d))
			case !slices.Contains(out, d):
				out = append(out, d)
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}
