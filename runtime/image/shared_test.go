package image

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestStoresShareIndex: two stores on one directory see each other's
// changes without reopening, and a collection by one keeps what the other
// committed after the collector last read the index.
func TestStoresShareIndex(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	refA, _ := reg.Push(t, "share/a:1", testregistry.Random(t, 1, 64<<10, 31))
	refB, _ := reg.Push(t, "share/b:1", testregistry.Random(t, 2, 64<<10, 32))
	dir := t.TempDir()
	a := openStore(t, dir, config.Registry{})
	b := openStore(t, dir, config.Registry{})
	ctx := context.Background()

	imgA, err := a.Pull(ctx, refA, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(refA); err != nil || got.ID != imgA.ID {
		t.Fatalf("b.Get(%s) = %v, %v; want the image a pulled", refA, got.ID, err)
	}
	usageBefore := b.Usage()
	imgB, err := b.Pull(ctx, refB, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	// a has not read the index since b's pull: its removal must read it
	// again, keep b's image and collect none of its content.
	if err := a.Remove(refA); err != nil {
		t.Fatal(err)
	}
	if list := b.List(); len(list) != 1 || list[0].ID != imgB.ID {
		t.Fatalf("b.List after a's removal = %v, want only %s", list, imgB.ID)
	}
	if _, err := b.LayerDirs(refB); err != nil {
		t.Fatal(err)
	}
	for _, l := range imgB.Layers {
		if !exists(filepath.Join(dir, "layers", "sha256", strings.TrimPrefix(l.ChainID, "sha256:"), "diff")) ||
			!exists(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:"))) {
			t.Fatalf("layer %s of b's image was collected by a", l.ChainID)
		}
	}
	// a accounts for b's image, and collects its content once it goes.
	if u := a.Usage(); u.Bytes <= usageBefore.Bytes {
		t.Fatalf("a's usage %+v does not count b's image (before: %+v)", u, usageBefore)
	}
	if err := a.Remove(refB); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"blobs/sha256", "layers/sha256"} {
		if left := entriesIn(t, filepath.Join(dir, sub)); len(left) > 0 {
			t.Errorf("%s not empty after both images were removed: %v", sub, left)
		}
	}
	if list := b.List(); len(list) != 0 {
		t.Fatalf("b still lists %v", list)
	}
}

// TestOpenClearsStaleImports: an import's work directory whose process is
// gone is removed at Open; one whose lock is held stays.
func TestOpenClearsStaleImports(t *testing.T) {
	dir := t.TempDir()
	openStore(t, dir, config.Registry{})
	stale := filepath.Join(dir, "import", "stale")
	live := filepath.Join(dir, "import", "live")
	for _, d := range []string{stale, live} {
		if err := os.MkdirAll(filepath.Join(d, "spool"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := lockFile(filepath.Join(live, "lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	openStore(t, dir, config.Registry{})
	if exists(stale) {
		t.Errorf("%s survived Open", stale)
	}
	if !exists(live) {
		t.Errorf("Open removed %s, whose lock is held", live)
	}
}
