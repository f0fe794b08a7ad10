package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// epoch is the default mtime of test entries, far from "now" so a time that
// was not applied shows.
var epoch = time.Unix(1_000_000_000, 0)

// ent is one tar entry to build: the header plus a regular file's body.
type ent struct {
	tar.Header
	body string
}

func dirEnt(name string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch}}
}

func fileEnt(name, body string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: epoch}, body: body}
}

func symEnt(name, target string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch}}
}

func linkEnt(name, target string) ent {
	return ent{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: epoch}}
}

func devEnt(name string, typ byte, major, minor int64) ent {
	return ent{Header: tar.Header{Typeflag: typ, Name: name, Mode: 0o640, ModTime: epoch, Devmajor: major, Devminor: minor}}
}

// with returns e changed by f, to keep table rows one expression.
func (e ent) with(f func(h *tar.Header)) ent {
	f(&e.Header)
	return e
}

// buildTar writes ents as a tar stream, PAX where xattrs need it.
func buildTar(tb testing.TB, ents ...ent) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if len(h.PAXRecords) > 0 || !h.AccessTime.IsZero() {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatalf("write header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			tb.Fatalf("write body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatalf("close tar: %v", err)
	}
	return buf.Bytes()
}

// sandbox is a layer dir inside a parent that also holds a sentinel file:
// relative escapes from the layer land in the parent first, so a parent that
// still holds exactly {layer, sentinel}, unchanged, shows none happened.
type sandbox struct {
	parent, dir, sentinel string
	sentinelStat          unix.Stat_t
}

const sentinelBody = "do not touch"

func newSandbox(tb testing.TB) *sandbox {
	tb.Helper()
	parent := tb.TempDir()
	s := &sandbox{parent: parent, dir: filepath.Join(parent, "layer"), sentinel: filepath.Join(parent, "sentinel")}
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(s.sentinel, []byte(sentinelBody), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Lstat(s.sentinel, &s.sentinelStat); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *sandbox) apply(tb testing.TB, ents ...ent) (Usage, error) {
	tb.Helper()
	return Apply(context.Background(), s.dir, bytes.NewReader(buildTar(tb, ents...)), Limits{})
}

// checkOutside fails unless the parent is exactly as newSandbox left it.
func (s *sandbox) checkOutside(tb testing.TB) {
	tb.Helper()
	names, err := os.ReadDir(s.parent)
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, n := range names {
		got = append(got, n.Name())
	}
	if !slices.Equal(got, []string{"layer", "sentinel"}) {
		tb.Errorf("parent of the layer dir holds %q, want only layer and sentinel", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(s.sentinel, &st); err != nil {
		tb.Fatalf("sentinel: %v", err)
	}
	want := s.sentinelStat
	if st.Mode != want.Mode || st.Uid != want.Uid || st.Gid != want.Gid || st.Nlink != want.Nlink ||
		st.Size != want.Size || st.Mtim != want.Mtim || st.Ctim != want.Ctim {
		tb.Errorf("sentinel changed: %+v, was %+v", st, want)
	}
	if b, err := os.ReadFile(s.sentinel); err != nil || string(b) != sentinelBody {
		tb.Errorf("sentinel content %q, %v", b, err)
	}
	if fi, err := os.Lstat(s.dir); err != nil || !fi.IsDir() {
		tb.Errorf("layer dir is no longer a directory: %v, %v", fi, err)
	}
}

// lstat returns the stat of name inside the layer, failing the test if absent.
func (s *sandbox) lstat(tb testing.TB, name string) unix.Stat_t {
	tb.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(s.dir, name), &st); err != nil {
		tb.Fatalf("lstat %s: %v", name, err)
	}
	return st
}

func (s *sandbox) exists(name string) bool {
	_, err := os.Lstat(filepath.Join(s.dir, name))
	return err == nil
}

// xattr reads one xattr of the inode at path itself, "" with ok false if absent.
func xattr(tb testing.TB, path, name string) (string, bool) {
	tb.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if errors.Is(err, unix.ENODATA) {
		return "", false
	}
	if err != nil {
		tb.Fatalf("lgetxattr %s %s: %v", path, name, err)
	}
	return string(buf[:n]), true
}

// openFds counts this process's open fds.
func openFds(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// walkUsage computes Usage the slow way, for comparison.
func walkUsage(tb testing.TB, dir string) Usage {
	tb.Helper()
	var u Usage
	seen := map[uint64]bool{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if !seen[st.Ino] {
			seen[st.Ino] = true
			u.Bytes += st.Blocks * 512
			u.Inodes++
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
