// Package mountinfo reads proc(5) mountinfo, handing its caller only the
// mounts of the filesystem types it names. It imports nothing of crib's.
// Internal to crib; no API compatibility promised.
package mountinfo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrMalformed is the kind of Scan's errors about a line's form (a read
// error is returned as it is).
var ErrMalformed = errors.New("malformed mountinfo")

// Mount is what a caller reads of one mountinfo line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Root (/mnt1) is the mount's root within its filesystem and Mountpoint
// (/mnt2) where it is mounted, both unescaped; FSType (ext3) its type;
// SuperOptions (rw,errors=continue) the options after the source, the
// filesystem's own.
type Mount struct {
	Root, Mountpoint, FSType, SuperOptions string
}

// Scan reads mountinfo lines from r and calls fn with each mount whose type
// is one of types (nil: every mount), until fn returns false. Every line is checked for its
// form (a " - " separator, five fields before it and three after), but only
// the lines asked for become strings: the shim reads the host's mountinfo
// at its start, hundreds of lines on a node full of pods, and an idle shim
// never collects that garbage (its heap stays under the GC's first goal),
// so each byte allocated here stays resident in every pod's shim.
func Scan(r io.Reader, types []string, fn func(Mount) bool) error {
	return scan(r, types, func(_ []byte, before [5][]byte, after [3][]byte) bool {
		return fn(Mount{Root: Unescape(string(before[3])), Mountpoint: Unescape(string(before[4])),
			FSType: string(after[0]), SuperOptions: string(after[2])})
	})
}

// Filter returns the lines of r whose type is one of types, as they are,
// each ending in a newline, checked for form as Scan checks them. The
// kernel formats a mountinfo of a node full of pods in about a millisecond
// (thousands of lines: every pod's pinned namespaces and /dev/shm); one
// read filtered for its few types serves several parsers.
func Filter(r io.Reader, types []string) ([]byte, error) {
	var out []byte
	err := scan(r, types, func(line []byte, _ [5][]byte, _ [3][]byte) bool {
		out = append(append(out, line...), '\n')
		return true
	})
	return out, err
}

// scan is Scan's loop, handing fn each wanted line and its fields.
func scan(r io.Reader, types []string, fn func(line []byte, before [5][]byte, after [3][]byte) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		pre, post, ok := bytes.Cut(line, []byte(" - "))
		if !ok {
			return fmt.Errorf("mountinfo line %q: no separator: %w", line, ErrMalformed)
		}
		var before [5][]byte
		var after [3][]byte
		if fields(pre, before[:]) < len(before) || fields(post, after[:]) < len(after) {
			return fmt.Errorf("mountinfo line %q: too few fields: %w", line, ErrMalformed)
		}
		if !wanted(after[0], types) {
			continue
		}
		if !fn(line, before, after) {
			return nil
		}
	}
	return sc.Err()
}

func wanted(fstype []byte, types []string) bool {
	if types == nil {
		return true
	}
	for _, t := range types {
		if string(fstype) == t { // compared without a copy
			return true
		}
	}
	return false
}

// fields stores the first len(out) blank-separated fields of b in out and
// returns how many it found.
func fields(b []byte, out [][]byte) int {
	n := 0
	for n < len(out) {
		b = bytes.TrimLeft(b, " \t")
		if len(b) == 0 {
			break
		}
		i := bytes.IndexAny(b, " \t")
		if i < 0 {
			i = len(b)
		}
		out[n], b = b[:i], b[i:]
		n++
	}
	return n
}

// Unescape undoes the octal escapes (\040 for space, \011, \012, \134) the
// kernel writes in mountinfo paths.
func Unescape(s string) string {
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
	for i := range len(s) {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return len(s) == 3
}
