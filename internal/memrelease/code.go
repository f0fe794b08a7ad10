package memrelease

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DropUnusedCode hands back the pages of the running binary's code and
// read-only data, and has them read again one page at a time when used.
//
// The page cache holds a binary in large folios (readahead, or the write
// that made it), and a fault maps a whole folio: a daemon maps nearly all
// of its 20 MB binary right after start, though an idle node runs a few
// MB of it (the CRI calls a kubelet makes, pod starts). MADV_RANDOM stops
// readahead on those mappings, MADV_PAGEOUT reclaims their pages now; from
// then on the process keeps resident the code it runs. A page used again
// costs a read from the page cache or the disk, once.
//
// Call it once, after start-up. Errors (a kernel without MADV_PAGEOUT)
// leave the mappings as they were.
func DropUnusedCode() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("drop unused code: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fmt.Errorf("drop unused code: %w", err)
	}
	ranges, err := readOnlyMappings("/proc/self/maps", exe)
	if err != nil {
		return fmt.Errorf("drop unused code: %w", err)
	}
	for _, r := range ranges {
		for _, advice := range []int{unix.MADV_RANDOM, unix.MADV_PAGEOUT} {
			// By address: the mappings are not Go memory.
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], uintptr(advice)); errno != 0 {
				return fmt.Errorf("drop unused code: madvise %d on %#x-%#x: %w", advice, r[0], r[1], errno)
			}
		}
	}
	return nil
}

// readOnlyMappings lists the start and end of path's mappings that are
// not writable (code, read-only data) in a proc(5) maps file.
func readOnlyMappings(maps, path string) ([][2]uintptr, error) {
	f, err := os.Open(maps)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]uintptr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Join(fields[5:], " ") != path || len(fields[1]) < 2 || fields[1][1] == 'w' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("%s: bad range %q", maps, fields[0])
		}
		out = append(out, [2]uintptr{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}
