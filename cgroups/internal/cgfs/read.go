package cgfs

import (
	"errors"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReadOptional reads cg/file into *buf (kept for the next read) like
// ReadInto, but reports a file that is not there as absent (false, no
// error): a controller that is not enabled, a kernel too old for the file,
// or one built without it (ENOENT; EOPNOTSUPP for pressure files with PSI
// off). Stats read many such files and leave their figures 0.
func (r *Root) ReadOptional(cg, file string, buf *[]byte) ([]byte, bool, error) {
	b, err := r.ReadInto(cg, file, *buf)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, false, nil
		}
		return nil, false, err
	}
	*buf = b
	return b, true, nil
}

// Procs returns the pids in cgroup.procs of rel and every cgroup below it.
// A cgroup removed while it is walked counts as empty: its processes are
// gone or have moved.
func Procs(root *Root, rel string) ([]int, error) {
	var out []int
	var walk func(rel string) error
	walk = func(rel string) error {
		s, err := root.Read(rel, "cgroup.procs")
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		if err != nil {
			return err
		}
		for f := range strings.FieldsSeq(s) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		kids, err := root.Children(rel)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := walk(rel + "/" + k); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk(rel)
}
