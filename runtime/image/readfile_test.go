package image

import (
	"context"
	"errors"
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
	for _, name := range []string{"/etc/shadow", "/bin", "/bin/sh", "/nonexistent/x"} {
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
