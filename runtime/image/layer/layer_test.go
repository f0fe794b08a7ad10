package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crib-runtime/crib/internal/testutil"
	"golang.org/x/sys/unix"
)

// capNetBindService is a version 2 security.capability value granting
// CAP_NET_BIND_SERVICE permitted and effective, as setcap writes it.
func capNetBindService() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000000|1) // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_BIND_SERVICE)
	return string(b)
}

func TestApplyEntryTypes(t *testing.T) {
	testutil.RequireRoot(t)
	mtime := time.Unix(1_500_000_000, 123_456_789)
	atime := time.Unix(1_400_000_000, 987_654_321)
	capValue := capNetBindService()
	owned := func(uid, gid int, mode int64) func(*tar.Header) {
		return func(h *tar.Header) { h.Uid, h.Gid, h.Mode, h.ModTime, h.AccessTime = uid, gid, mode, mtime, atime }
	}
	xattrs := func(kv ...string) func(*tar.Header) {
		return func(h *tar.Header) {
			h.PAXRecords = map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				h.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
			}
		}
	}
	tests := []struct {
		name     string
		ent      ent
		fileType uint32
		uid, gid uint32
		perm     uint32 // mode & 07777
		rdev     uint64
		body     string // regular files
		target   string // symlinks
		xattrs   map[string]string
	}{
		{
			name: "directory", ent: dirEnt("d/").with(owned(1000, 1001, 0o750)).with(xattrs("user.dir", "v")),
			fileType: unix.S_IFDIR, uid: 1000, gid: 1001, perm: 0o750, xattrs: map[string]string{"user.dir": "v"},
		},
		{
			name: "setgid sticky directory", ent: dirEnt("tmp/").with(owned(0, 50, 0o3777)),
			fileType: unix.S_IFDIR, gid: 50, perm: 0o3777,
		},
		{
			name: "regular file", ent: fileEnt("f", "hello").with(owned(1000, 1001, 0o640)).with(xattrs("user.a", "1", "user.b", "")),
			fileType: unix.S_IFREG, uid: 1000, gid: 1001, perm: 0o640, body: "hello",
			xattrs: map[string]string{"user.a": "1", "user.b": ""},
		},
		{
			// chown clears setuid and setgid, so the mode must come after it.
			name: "setuid setgid file owned by non-root", ent: fileEnt("su", "x").with(owned(1000, 1000, 0o6755)),
			fileType: unix.S_IFREG, uid: 1000, gid: 1000, perm: 0o6755, body: "x",
		},
		{
			// chown and write both drop security.capability.
			name: "file capability", ent: fileEnt("ping", "elf").with(owned(0, 0, 0o755)).with(xattrs("security.capability", capValue)),
			fileType: unix.S_IFREG, perm: 0o755, body: "elf", xattrs: map[string]string{"security.capability": capValue},
		},
		{
			name: "symlink", ent: symEnt("s", "/no/such/target").with(owned(1000, 1001, 0o777)).with(xattrs("trusted.sym", "t")),
			fileType: unix.S_IFLNK, uid: 1000, gid: 1001, perm: 0o777, target: "/no/such/target",
			xattrs: map[string]string{"trusted.sym": "t"},
		},
		{
			name: "char device", ent: devEnt("null", tar.TypeChar, 1, 3).with(owned(0, 5, 0o666)).with(xattrs("trusted.dev", "c")),
			fileType: unix.S_IFCHR, gid: 5, perm: 0o666, rdev: unix.Mkdev(1, 3), xattrs: map[string]string{"trusted.dev": "c"},
		},
		{
			name: "block device", ent: devEnt("loop0", tar.TypeBlock, 7, 0).with(owned(0, 6, 0o660)),
			fileType: unix.S_IFBLK, gid: 6, perm: 0o660, rdev: unix.Mkdev(7, 0),
		},
		{
			name: "fifo", ent: devEnt("pipe", tar.TypeFifo, 0, 0).with(owned(1000, 1000, 0o4620)),
			fileType: unix.S_IFIFO, uid: 1000, gid: 1000, perm: 0o4620,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			if _, err := s.apply(t, tt.ent); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			name := strings.TrimSuffix(tt.ent.Name, "/")
			p := filepath.Join(s.dir, name)
			st := s.lstat(t, name)
			if got := st.Mode & unix.S_IFMT; got != tt.fileType {
				t.Errorf("type %o, want %o", got, tt.fileType)
			}
			if st.Uid != tt.uid || st.Gid != tt.gid {
				t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, tt.uid, tt.gid)
			}
			if got := st.Mode & 0o7777; got != tt.perm {
				t.Errorf("mode %o, want %o", got, tt.perm)
			}
			if st.Rdev != tt.rdev {
				t.Errorf("rdev %#x, want %#x", st.Rdev, tt.rdev)
			}
			if st.Mtim != unix.NsecToTimespec(mtime.UnixNano()) || st.Atim != unix.NsecToTimespec(atime.UnixNano()) {
				t.Errorf("mtime %v atime %v, want %v %v", st.Mtim, st.Atim, mtime, atime)
			}
			if tt.fileType == unix.S_IFREG {
				if b, err := os.ReadFile(p); err != nil || string(b) != tt.body {
					t.Errorf("content %q, %v; want %q", b, err, tt.body)
				}
			}
			if tt.fileType == unix.S_IFLNK {
				if got, err := os.Readlink(p); err != nil || got != tt.target {
					t.Errorf("symlink target %q, %v; want %q", got, err, tt.target)
				}
			}
			for k, want := range tt.xattrs {
				if got, ok := xattr(t, p, k); !ok || got != want {
					t.Errorf("xattr %s = %q (present %v), want %q", k, got, ok, want)
				}
			}
			s.checkOutside(t)
		})
	}
}

// TestApplyDirectoryTimesAfterChildren checks directory mtimes survive the
// files later written into them, and that missing parents are created 0755
// root-owned.
func TestApplyDirectoryTimesAfterChildren(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	mtime := time.Unix(1_234_567_890, 0)
	_, err := s.apply(t,
		dirEnt("a/").with(func(h *tar.Header) { h.ModTime = mtime }),
		fileEnt("a/f", "1"),
		dirEnt("a/sub/").with(func(h *tar.Header) { h.ModTime = mtime }),
		fileEnt("a/sub/g", "2"),
		fileEnt("a/f2", "3"),
		fileEnt("implicit/deeper/h", "4"),
	)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for _, name := range []string{"a", "a/sub"} {
		if st := s.lstat(t, name); st.Mtim != unix.NsecToTimespec(mtime.UnixNano()) {
			t.Errorf("%s mtime %v, want %v", name, st.Mtim, mtime)
		}
	}
	for _, name := range []string{"implicit", "implicit/deeper"} {
		st := s.lstat(t, name)
		if st.Mode != unix.S_IFDIR|0o755 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: mode %o owner %d:%d, want dir 0755 0:0", name, st.Mode, st.Uid, st.Gid)
		}
	}
}

// TestApplyRootEntry checks a "./" entry sets the layer root's metadata.
func TestApplyRootEntry(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	_, err := s.apply(t, dirEnt("./").with(func(h *tar.Header) { h.Mode, h.Uid = 0o711, 42 }), fileEnt("./x", ""))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if st := s.lstat(t, "."); st.Mode&0o7777 != 0o711 || st.Uid != 42 || st.Mtim != unix.NsecToTimespec(epoch.UnixNano()) {
		t.Errorf("root mode %o uid %d mtime %v", st.Mode&0o7777, st.Uid, st.Mtim)
	}
	if _, err := newSandbox(t).apply(t, fileEnt(".", "")); err == nil {
		t.Error("a regular file replacing the root: no error")
	}
}

func TestApplyHardLink(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	_, err := s.apply(t,
		fileEnt("bin/busybox", "bb").with(func(h *tar.Header) { h.Mode = 0o4755 }),
		linkEnt("bin/sh", "bin/busybox"),
		linkEnt("/usr/bin/ls", "/bin/busybox"), // absolute names on both sides
		symEnt("s", "dangling"),
		linkEnt("s2", "s"), // links the symlink itself
	)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	orig := s.lstat(t, "bin/busybox")
	for _, name := range []string{"bin/sh", "usr/bin/ls"} {
		if st := s.lstat(t, name); st.Ino != orig.Ino {
			t.Errorf("%s is inode %d, want %d (bin/busybox)", name, st.Ino, orig.Ino)
		}
	}
	if orig.Nlink != 3 || orig.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/busybox nlink %d mode %o, want 3 04755", orig.Nlink, orig.Mode&0o7777)
	}
	if st := s.lstat(t, "s2"); st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Ino != s.lstat(t, "s").Ino {
		t.Errorf("s2 is not a hard link of the symlink s")
	}
}

func TestApplyWhiteouts(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name       string
		ents       []ent
		whiteouts  []string // char devices 0:0 expected
		opaque     []string // directories with trusted.overlay.opaque=y
		notOpaque  []string // directories without it
		absent     []string
		regular    []string // regular files expected to stay
		checkOwner string   // a directory expected to carry uid 7
	}{
		{
			name:      "file whiteout",
			ents:      []ent{dirEnt("etc/"), fileEnt("etc/.wh.passwd", "").with(func(h *tar.Header) { h.Uid = 1000 })},
			whiteouts: []string{"etc/passwd"},
			absent:    []string{"etc/.wh.passwd"},
			notOpaque: []string{"etc"},
		},
		{
			name:      "whiteout in a directory the layer does not list",
			ents:      []ent{fileEnt("var/lib/.wh.dpkg", "")},
			whiteouts: []string{"var/lib/dpkg"},
		},
		{
			name:       "opaque marker before its directory",
			ents:       []ent{fileEnt("opt/.wh..wh..opq", ""), dirEnt("opt/").with(func(h *tar.Header) { h.Uid = 7 }), fileEnt("opt/new", "")},
			opaque:     []string{"opt"},
			absent:     []string{"opt/.wh..wh..opq"},
			regular:    []string{"opt/new"},
			checkOwner: "opt",
		},
		{
			name:    "opaque marker after its directory",
			ents:    []ent{dirEnt("srv/"), fileEnt("srv/keep", ""), fileEnt("srv/.wh..wh..opq", "")},
			opaque:  []string{"srv"},
			regular: []string{"srv/keep"},
		},
		{
			name:   "aufs metadata is skipped",
			ents:   []ent{dirEnt(".wh..wh.plnk/"), fileEnt(".wh..wh.plnk/123.456", "x"), fileEnt(".wh..wh.aufs", ""), dirEnt("d/.wh..wh.orph/")},
			absent: []string{".wh..wh.plnk", ".wh..wh.aufs", "plnk", "aufs", "d/.wh..wh.orph"},
		},
		{
			// The image spec: a whiteout hides lower layers only.
			name:    "whiteout after a file of the same layer keeps the file",
			ents:    []ent{fileEnt("f", "x"), fileEnt(".wh.f", "")},
			regular: []string{"f"},
		},
		{
			name:   "whiteout after a directory of the same layer makes it opaque",
			ents:   []ent{dirEnt("d/"), fileEnt("d/x", ""), fileEnt(".wh.d", "")},
			opaque: []string{"d"}, regular: []string{"d/x"},
		},
		{
			name:   "directory after its whiteout is opaque",
			ents:   []ent{fileEnt(".wh.d", ""), dirEnt("d/"), fileEnt("d/x", "")},
			opaque: []string{"d"}, regular: []string{"d/x"},
		},
		{
			name:    "file after its whiteout replaces it",
			ents:    []ent{fileEnt(".wh.f", ""), fileEnt("f", "x")},
			regular: []string{"f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			if _, err := s.apply(t, tt.ents...); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for _, name := range tt.whiteouts {
				st := s.lstat(t, name)
				if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != 0 || st.Gid != 0 {
					t.Errorf("%s: mode %o rdev %#x owner %d:%d, want a 0:0 char device owned 0:0", name, st.Mode, st.Rdev, st.Uid, st.Gid)
				}
			}
			for _, name := range tt.opaque {
				if v, ok := xattr(t, filepath.Join(s.dir, name), opaqueXattr); !ok || v != "y" {
					t.Errorf("%s: %s = %q (present %v), want y", name, opaqueXattr, v, ok)
				}
			}
			for _, name := range tt.notOpaque {
				if _, ok := xattr(t, filepath.Join(s.dir, name), opaqueXattr); ok {
					t.Errorf("%s is opaque", name)
				}
			}
			for _, name := range tt.absent {
				if s.exists(name) {
					t.Errorf("%s exists", name)
				}
			}
			for _, name := range tt.regular {
				if st := s.lstat(t, name); st.Mode&unix.S_IFMT != unix.S_IFREG {
					t.Errorf("%s: mode %o, want a regular file", name, st.Mode)
				}
			}
			if tt.checkOwner != "" {
				if st := s.lstat(t, tt.checkOwner); st.Uid != 7 {
					t.Errorf("%s: uid %d, want 7 from its entry", tt.checkOwner, st.Uid)
				}
			}
		})
	}
}

// TestApplyDropsOverlayXattrs checks a layer cannot set overlayfs's own
// xattrs (redirect, metacopy, opaque) except through whiteout files.
func TestApplyDropsOverlayXattrs(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	_, err := s.apply(t, dirEnt("d/").with(func(h *tar.Header) {
		h.PAXRecords = map[string]string{
			"SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
			"SCHILY.xattr.trusted.overlay.opaque":   "y",
			"SCHILY.xattr.trusted.other":            "kept",
		}
	}))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	p := filepath.Join(s.dir, "d")
	for _, name := range []string{"trusted.overlay.redirect", "trusted.overlay.opaque"} {
		if v, ok := xattr(t, p, name); ok {
			t.Errorf("%s = %q, want it dropped", name, v)
		}
	}
	if v, _ := xattr(t, p, "trusted.other"); v != "kept" {
		t.Errorf("trusted.other = %q, want kept", v)
	}
}

func TestApplyReplace(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name  string
		ents  []ent
		check func(t *testing.T, s *sandbox)
	}{
		{
			name: "file over file",
			ents: []ent{fileEnt("f", "old"), fileEnt("f", "new")},
			check: func(t *testing.T, s *sandbox) {
				if b, _ := os.ReadFile(filepath.Join(s.dir, "f")); string(b) != "new" {
					t.Errorf("content %q, want new", b)
				}
			},
		},
		{
			name: "file over directory tree",
			ents: []ent{dirEnt("d/"), dirEnt("d/sub/"), fileEnt("d/sub/x", "x"), fileEnt("d", "now a file")},
			check: func(t *testing.T, s *sandbox) {
				if st := s.lstat(t, "d"); st.Mode&unix.S_IFMT != unix.S_IFREG {
					t.Errorf("d mode %o, want a regular file", st.Mode)
				}
			},
		},
		{
			name: "directory over file",
			ents: []ent{fileEnt("d", "x"), dirEnt("d/"), fileEnt("d/y", "y")},
			check: func(t *testing.T, s *sandbox) {
				if st := s.lstat(t, "d"); st.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Errorf("d mode %o, want a directory", st.Mode)
				}
				if _, ok := xattr(t, filepath.Join(s.dir, "d"), opaqueXattr); ok {
					t.Error("d is opaque, but replaced a file, not a whiteout")
				}
			},
		},
		{
			name: "directory over directory updates metadata and keeps children",
			ents: []ent{dirEnt("d/"), fileEnt("d/keep", "k"), dirEnt("d/").with(func(h *tar.Header) { h.Mode, h.Uid = 0o700, 9 })},
			check: func(t *testing.T, s *sandbox) {
				if st := s.lstat(t, "d"); st.Mode&0o7777 != 0o700 || st.Uid != 9 {
					t.Errorf("d mode %o uid %d, want 0700 9", st.Mode&0o7777, st.Uid)
				}
				s.lstat(t, "d/keep")
			},
		},
		{
			name: "file over symlink replaces the link, not its target",
			ents: []ent{fileEnt("target", "t"), symEnt("l", "target"), fileEnt("l", "l")},
			check: func(t *testing.T, s *sandbox) {
				if b, _ := os.ReadFile(filepath.Join(s.dir, "target")); string(b) != "t" {
					t.Errorf("target content %q, want t", b)
				}
				if st := s.lstat(t, "l"); st.Mode&unix.S_IFMT != unix.S_IFREG {
					t.Errorf("l mode %o, want a regular file", st.Mode)
				}
			},
		},
		{
			name: "replacing one name of a hard link keeps the other",
			ents: []ent{fileEnt("a", "shared"), linkEnt("b", "a"), fileEnt("a", "mine")},
			check: func(t *testing.T, s *sandbox) {
				if b, _ := os.ReadFile(filepath.Join(s.dir, "b")); string(b) != "shared" {
					t.Errorf("b content %q, want shared", b)
				}
			},
		},
		{
			name: "symlink, device and fifo over each other",
			ents: []ent{symEnt("n", "x"), devEnt("n", tar.TypeChar, 1, 5), devEnt("n", tar.TypeFifo, 0, 0), symEnt("n", "y")},
			check: func(t *testing.T, s *sandbox) {
				if got, _ := os.Readlink(filepath.Join(s.dir, "n")); got != "y" {
					t.Errorf("n -> %q, want y", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			u, err := s.apply(t, tt.ents...)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			tt.check(t, s)
			if want := walkUsage(t, s.dir); u != want {
				t.Errorf("Usage %+v, want %+v from a walk", u, want)
			}
			s.checkOutside(t)
		})
	}
}

func TestApplyUsage(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	big := strings.Repeat("x", 1<<20)
	u, err := s.apply(t,
		dirEnt("d/"),
		fileEnt("d/big", big),
		linkEnt("d/big2", "d/big"),
		linkEnt("big3", "d/big"),
		fileEnt("small", "s"),
		fileEnt("empty", ""),
		symEnt("l", "d/big"),
		fileEnt("x/y/z", "z"), // two implicit directories
		fileEnt(".wh.gone", ""),
	)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	// root, d, x, x/y; big, small, empty, l, z, the whiteout.
	if u.Inodes != 10 {
		t.Errorf("Inodes = %d, want 10", u.Inodes)
	}
	if u.Bytes < 1<<20 || u.Bytes > 1<<21 {
		t.Errorf("Bytes = %d, want the 1 MiB file counted once", u.Bytes)
	}
	if want := walkUsage(t, s.dir); u != want {
		t.Errorf("Usage %+v, want %+v from a walk", u, want)
	}
}

func TestApplyBadInput(t *testing.T) {
	testutil.RequireRoot(t)
	good := buildTar(t, dirEnt("d/"), fileEnt("d/file", strings.Repeat("a", 4096)), fileEnt("d/other", "o"))
	corrupt := bytes.Clone(good)
	copy(corrupt[512+512+4096:], "garbage header block") // d/other's header
	unknown := buildTar(t, fileEnt("weird", "").with(func(h *tar.Header) { h.Typeflag = 'Z' }))
	tests := []struct {
		name    string
		tar     []byte
		wantErr []string
	}{
		{"truncated in content", good[:512+512+1000], []string{`apply layer entry "d/file"`, "unexpected EOF"}},
		{"truncated in header", good[:512+512+4096+100], []string{"read tar", "unexpected EOF"}},
		{"corrupt header", corrupt, []string{"read tar", "invalid tar header"}},
		{"unknown type", unknown, []string{`apply layer entry "weird"`, `unsupported entry type 'Z'`}},
		{"hard link to missing target", buildTar(t, linkEnt("h", "nope")), []string{`apply layer entry "h"`, `hard link target "nope"`, "no such file"}},
		{"hard link to a directory", buildTar(t, dirEnt("d/"), linkEnt("h", "d")), []string{`apply layer entry "h": link: operation not permitted`}},
		{"file under a file", buildTar(t, fileEnt("f", ""), fileEnt("f/g", "")), []string{`apply layer entry "f/g"`, "not a directory"}},
		{"negative owner", buildTar(t, fileEnt("f", "").with(func(h *tar.Header) { h.Uid = -1 })), []string{"invalid owner"}},
		{"bad whiteout", buildTar(t, fileEnt("a/.wh..", "")), []string{`apply layer entry "a/.wh.."`, "invalid whiteout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Apply(context.Background(), s.dir, bytes.NewReader(tt.tar), Limits{})
			if err == nil {
				t.Fatal("Apply: no error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			s.checkOutside(t)
		})
	}
}

func TestApplyRefusesNonEmptyDir(t *testing.T) {
	s := newSandbox(t)
	if err := os.WriteFile(filepath.Join(s.dir, "leftover"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.apply(t, fileEnt("f", "")); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Apply into a non-empty dir: %v, want a not empty error", err)
	}
}

func TestApplyCanceled(t *testing.T) {
	s := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, s.dir, bytes.NewReader(buildTar(t, fileEnt("f", ""))), Limits{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a canceled context: %v, want context.Canceled", err)
	}
	if s.exists("f") {
		t.Error("f was written after cancellation")
	}
}

// TestApplyClosesFds runs successful and failing applies through every path
// that opens fds and checks none stays open.
func TestApplyClosesFds(t *testing.T) {
	testutil.RequireRoot(t)
	layers := [][]ent{
		{dirEnt("a/"), fileEnt("a/f", "x"), dirEnt("a/b/"), fileEnt("a/b/g", "y"), fileEnt("c/d/e", "z"), linkEnt("a/h", "c/d/e"),
			symEnt("s", "a"), fileEnt("s/via", ""), fileEnt("a/.wh..wh..opq", ""), fileEnt("a/.wh.x", ""), dirEnt("a/")},
		{dirEnt("r/"), dirEnt("r/s/"), fileEnt("r/s/t", ""), fileEnt("r", "replace tree")},
		{fileEnt("f", ""), linkEnt("g", "missing/target")},
		{symEnt("out", "/"), fileEnt("out/../../x", "")},
		{dirEnt("deep/er/"), fileEnt("deep/er/f", ""), fileEnt("deep/er/f/g", "")},
	}
	before := openFds(t)
	for _, ents := range layers {
		s := newSandbox(t)
		_, _ = s.apply(t, ents...)
	}
	truncated := buildTar(t, fileEnt("a/b/c", strings.Repeat("x", 10000)))
	_, _ = Apply(context.Background(), newSandbox(t).dir, bytes.NewReader(truncated[:2000]), Limits{})
	if after := openFds(t); after != before {
		t.Errorf("%d fds open before, %d after", before, after)
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"a/b", "a/b", false},
		{"./a//b/", "a/b", false},
		{"/abs/x", "abs/x", false},
		{"///x", "x", false},
		{"a/../b", "b", false},
		{".", ".", false},
		{"/", ".", false},
		{"", ".", false},
		{"..", "", true},
		{"../x", "", true},
		{"a/../../x", "", true},
		{"/../x", "", true},
		{"a\x00b", "", true},
	}
	for _, tt := range tests {
		got, err := cleanName(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
