package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// Regressions of a review of `crib image import`: an import's commit
// beside a daemon that lands the same layer, and one that fails after
// moving content in.

// TestImportTakesLandedLayer: a layer the daemon's unpack lands between
// the import's check and its rename (unpack holds no file lock) is taken
// as the import's own; the import does not fail with ENOTEMPTY.
func TestImportTakesLandedLayer(t *testing.T) {
	root, dir := importRoot(t)
	daemon := openStore(t, dir, config.Registry{})
	im := openImporter(t, dir)
	landed := 0
	im.s.beforeMove = func(l Layer) {
		// The importer has moved the blob in already.
		if err := daemon.unpack(context.Background(), l); err != nil {
			t.Errorf("the daemon's unpack: %v", err)
		}
		landed++
	}
	img := testregistry.Random(t, 2, 16<<10, 72)
	mustImport(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"landed:1": img})), ImportOptions{})
	if landed != 2 {
		t.Fatalf("%d layers landed, want 2", landed)
	}
	if got, err := daemon.Get("landed:1"); err != nil || got.ID != configID(t, img) {
		t.Fatalf("the daemon's Get = %s, %v", got.ID, err)
	}
	if n := harness.CheckImageStore(t, root); n != 1 {
		t.Fatalf("the store holds %d images", n)
	}
	if e := entriesIn(t, filepath.Join(dir, "import")); len(e) != 0 {
		t.Fatalf("import/ holds %v", e)
	}
}

// TestFailedImportCollected: content an import moved in before it failed
// to write the index is recorded and deleted by the daemon's next
// collection, without a restart; the store is then as it was.
func TestFailedImportCollected(t *testing.T) {
	_, dir := importRoot(t)
	daemon := openStore(t, dir, config.Registry{})
	im := openImporter(t, dir)
	index := filepath.Join(dir, "images.json")
	before := storeState(t, dir)
	im.s.beforeMove = func(Layer) {
		// The index cannot be replaced: the commit fails after the move.
		if err := os.MkdirAll(filepath.Join(index, "x"), 0o700); err != nil {
			t.Error(err)
		}
	}
	img := testregistry.Random(t, 1, 16<<10, 73)
	if _, err := importTar(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"failed:1": img})), ImportOptions{}); err == nil {
		t.Fatal("the import succeeded")
	}
	if err := os.RemoveAll(index); err != nil {
		t.Fatal(err)
	}
	if e := entriesIn(t, filepath.Join(dir, "layers", "sha256")); len(e) != 1 {
		t.Fatalf("layers/ holds %v, want the layer the import moved in", e)
	}
	daemon.collect()
	if after := storeState(t, dir); after != before {
		t.Fatalf("the daemon's collection left:\nbefore %s\nafter  %s", before, after)
	}
}
