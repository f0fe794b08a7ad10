package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestReadFile(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "readfile:1", testregistry.Busybox(t, ""))
	s := openStore(t, t.TempDir(), config.Registry{})
	if _, err := s.Pull(context.Background(), ref, Auth{}); err != nil {
		t.Fatal(err)
	}
	passwd, err := s.ReadFile(ref, "/etc/passwd", 1<<20)
	if err != nil || len(passwd) == 0 || string(passwd[:5]) != "root:" {
		t.Fatalf("ReadFile(/etc/passwd) = %q, %v", passwd, err)
	}
	if b, err := s.ReadFile(ref, "etc/../etc/passwd", 4); err != nil || string(b) != "root" {
		t.Fatalf("limit: %q, %v", b, err)
	}
	// A symlink is followed inside the layer: bin/sh -> busybox.
	if b, err := s.ReadFile(ref, "/bin/sh", 4); err != nil || string(b) != "\x7fELF" {
		t.Errorf("ReadFile(/bin/sh) = %q, %v; want busybox's ELF header", b, err)
	}
	for _, name := range []string{"/etc/shadow", "/bin", "/nonexistent/x", "/etc/passwd/x"} {
		if _, err := s.ReadFile(ref, name, 1<<20); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("ReadFile(%s) = %v, want NotFound", name, err)
		}
	}
}

func TestReadFileWhiteouts(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Image(t, [][]testregistry.File{
		{{Name: "etc/", Mode: 0o755, Typ: '5'}, {Name: "etc/group", Mode: 0o644, Data: []byte("old")},
			{Name: "etc/passwd", Mode: 0o644, Data: []byte("lower")}, {Name: "opt/", Mode: 0o755, Typ: '5'},
			{Name: "opt/x", Mode: 0o644, Data: []byte("x")}},
		{{Name: "etc/", Mode: 0o755, Typ: '5'}, {Name: "etc/.wh.group", Mode: 0o644},
			{Name: "etc/passwd", Mode: 0o644, Data: []byte("upper")},
			{Name: "opt/", Mode: 0o755, Typ: '5'}, {Name: "opt/.wh..wh..opq", Mode: 0o644}},
	})
	ref, _ := reg.Push(t, "whiteouts:1", img)
	s := openStore(t, t.TempDir(), config.Registry{})
	if _, err := s.Pull(context.Background(), ref, Auth{}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.ReadFile(ref, "/etc/passwd", 100); err != nil || string(b) != "upper" {
		t.Errorf("top layer wins: %q, %v", b, err)
	}
	for _, name := range []string{"/etc/group", "/opt/x"} {
		if b, err := s.ReadFile(ref, name, 100); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s behind a whiteout/opaque dir: %q, %v", name, b, err)
		}
	}
}

// TestReadFileStaysInImage regresses the daemon reading the host's files
// for an image whose layer links its /etc, or its /etc/passwd, to the
// host's: every path must resolve inside the layer.
func TestReadFileStaysInImage(t *testing.T) {
	testutil.RequireRoot(t)
	host, err := os.ReadFile("/etc/passwd")
	if err != nil || len(host) == 0 {
		t.Fatalf("the host's /etc/passwd is needed to compare: %v", err)
	}
	dir := testregistry.File{Name: "etc/", Mode: 0o755, Typ: tar.TypeDir}
	cases := []struct {
		name   string
		layers [][]testregistry.File
		want   string // "" for NotFound
	}{
		{"etc -> /etc", [][]testregistry.File{{{Name: "etc", Typ: tar.TypeSymlink, Link: "/etc"}}}, ""},
		{"etc -> ../../../../etc", [][]testregistry.File{{{Name: "etc", Typ: tar.TypeSymlink, Link: "../../../../etc"}}}, ""},
		{"passwd -> /etc/shadow, no shadow", [][]testregistry.File{{dir,
			{Name: "etc/passwd", Typ: tar.TypeSymlink, Link: "/etc/shadow"}}}, ""},
		{"passwd -> /etc/shadow, the image's", [][]testregistry.File{{dir,
			{Name: "etc/shadow", Mode: 0o600, Data: []byte("image shadow")},
			{Name: "etc/passwd", Typ: tar.TypeSymlink, Link: "/etc/shadow"}}}, "image shadow"},
		{"passwd -> ../../../../etc/passwd", [][]testregistry.File{{dir,
			{Name: "etc/passwd", Typ: tar.TypeSymlink, Link: "../../../../etc/passwd"}}}, ""},
		{"etc -> /etc over a lower etc/passwd", [][]testregistry.File{
			{dir, {Name: "etc/passwd", Mode: 0o644, Data: []byte("lower")}},
			{{Name: "etc", Typ: tar.TypeSymlink, Link: "/etc"}}}, ""},
		{"etc -> usr/etc in the same layer", [][]testregistry.File{{
			{Name: "usr/", Mode: 0o755, Typ: tar.TypeDir}, {Name: "usr/etc/", Mode: 0o755, Typ: tar.TypeDir},
			{Name: "usr/etc/passwd", Mode: 0o644, Data: []byte("usr etc")},
			{Name: "etc", Typ: tar.TypeSymlink, Link: "/usr/etc"}}}, "usr etc"},
	}
	reg := testregistry.Start(t)
	s := openStore(t, t.TempDir(), config.Registry{})
	for i, c := range cases {
		ref, _ := reg.Push(t, fmt.Sprintf("escape:%d", i), testregistry.Image(t, c.layers))
		if _, err := s.Pull(context.Background(), ref, Auth{}); err != nil {
			t.Fatalf("%s: pull: %v", c.name, err)
		}
		b, err := s.ReadFile(ref, "/etc/passwd", 1<<20)
		if len(b) > 0 && bytes.Equal(b, host[:min(len(host), len(b))]) {
			t.Errorf("%s: read the host's /etc/passwd", c.name)
			continue
		}
		switch {
		case c.want == "" && !errors.Is(err, errdefs.ErrNotFound):
			t.Errorf("%s: ReadFile = %q, %v; want NotFound", c.name, b, err)
		case c.want != "" && (err != nil || string(b) != c.want):
			t.Errorf("%s: ReadFile = %q, %v; want %q", c.name, b, err, c.want)
		}
	}
}
