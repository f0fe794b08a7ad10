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

// TestCheckDir: an image volume's sub path is a directory of the merged
// view: found in the top layer that has it, hidden by whiteouts and opaque
// directories, never through a symlink out of the layer (hostetc leads to
// the host's /etc/ssl, which exists, when resolved outside the layer).
func TestCheckDir(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Image(t, [][]testregistry.File{
		{{Name: "etc/", Mode: 0o755, Typ: '5'}, {Name: "etc/ssl/", Mode: 0o755, Typ: '5'},
			{Name: "gone/", Mode: 0o755, Typ: '5'}, {Name: "opt/", Mode: 0o755, Typ: '5'}, {Name: "opt/old/", Mode: 0o755, Typ: '5'},
			{Name: "data", Mode: 0o644, Data: []byte("x")}},
		{{Name: "etc/", Mode: 0o755, Typ: '5'}, {Name: "etc/new/", Mode: 0o755, Typ: '5'},
			{Name: ".wh.gone", Mode: 0o644}, {Name: "opt/", Mode: 0o755, Typ: '5'}, {Name: "opt/.wh..wh..opq", Mode: 0o644},
			{Name: "link", Typ: '2', Link: "etc/new"},
			{Name: "hostetc", Typ: '2', Link: "/../../../../../../etc/ssl"}},
	})
	ref, _ := reg.Push(t, "checkdir:1", img)
	s := openStore(t, t.TempDir(), config.Registry{})
	if _, err := s.Pull(context.Background(), ref, Auth{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etc", "etc/ssl", "etc/new", "opt", "link", "/etc/../etc/ssl"} {
		if err := s.CheckDir(ref, name); err != nil {
			t.Errorf("CheckDir(%s) = %v, want a directory", name, err)
		}
	}
	for _, name := range []string{"nope", "gone", "opt/old", "etc/nope", "hostetc"} {
		if err := s.CheckDir(ref, name); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("CheckDir(%s) = %v, want NotFound", name, err)
		}
	}
	if err := s.CheckDir(ref, "data"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("CheckDir(data) = %v, want FailedPrecondition (not a directory)", err)
	}
	if err := s.CheckDir("sha256:0000", "etc"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown image: %v", err)
	}
}
