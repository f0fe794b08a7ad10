package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestImportBesideDaemon: imports into a store that another Store (the
// daemon's) serves while it pulls, lists, removes and collects all along.
// The daemon sees each imported image at once, without reopening, and no
// collection takes content of an imported image, though the imported
// images share a layer with the image the daemon keeps removing.
func TestImportBesideDaemon(t *testing.T) {
	root, dir := importRoot(t)
	reg := testregistry.Start(t)
	base := testregistry.Layer(t, []testregistry.File{{Name: "base", Mode: 0o644, Data: []byte("shared")}})
	pulled := testregistry.ImageOf(t, v1.Config{Cmd: []string{"pulled"}}, base, randomLayer(t, 50))
	ref, _ := reg.Push(t, "beside/pulled:1", pulled)
	daemon := openStore(t, dir, config.Registry{})
	im := openImporter(t, dir)

	// Rounds run whole (a cancelled pull goes on in the background until
	// it notices), so that nothing writes to the store once they stop.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var churnErr error
	rounds := 0
	wg.Go(func() {
		for !stop.Load() {
			if _, err := daemon.Pull(context.Background(), ref, Auth{}); err != nil {
				churnErr = err
				return
			}
			_ = daemon.List()
			if err := daemon.Remove(ref); err != nil {
				churnErr = err
				return
			}
			daemon.Collect()
			rounds++
		}
	})
	const imports = 6
	for i := range imports {
		img := testregistry.ImageOf(t, v1.Config{Cmd: []string{fmt.Sprint(i)}}, base,
			randomLayer(t, uint64(51+i)))
		tag := fmt.Sprintf("docker.io/beside/imported:%d", i)
		mustImport(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{tag: img})), ImportOptions{})
		got, err := daemon.Get(tag)
		if err != nil || got.ID != configID(t, img) {
			t.Fatalf("the daemon's Get(%s) after the import = %s, %v", tag, got.ID, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if churnErr != nil {
		t.Fatal(churnErr)
	}
	t.Logf("%d pull-remove-collect rounds beside %d imports", rounds, imports)
	if n := len(daemon.List()); n != imports {
		t.Fatalf("the daemon lists %d images, want %d", n, imports)
	}
	for _, img := range daemon.List() {
		dirs, err := daemon.LayerDirs(img.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("layer of %s was collected: %v", img.RepoTags, err)
			}
		}
	}
	if n := harness.CheckImageStore(t, root); n != imports {
		t.Fatalf("the store holds %d images", n)
	}
}

// TestImportRecommitsCollectedLayer: a layer the store had when an import
// began (kept only for a container) and that the daemon collects before
// the import commits is unpacked by the import after all, not referenced
// while absent.
func TestImportRecommitsCollectedLayer(t *testing.T) {
	root, dir := importRoot(t)
	pins := &fakePins{}
	daemon, _, err := Open(dir, config.Registry{}, config.Image{}, NodePlatform(), pins)
	if err != nil {
		t.Fatal(err)
	}
	im := openImporter(t, dir)
	base := testregistry.Layer(t, []testregistry.File{{Name: "base", Mode: 0o644, Data: []byte("pinned")}})
	x := testregistry.ImageOf(t, v1.Config{}, base)
	y := testregistry.ImageOf(t, v1.Config{Cmd: []string{"y"}}, base,
		testregistry.Layer(t, []testregistry.File{{Name: "y", Mode: 0o644, Data: []byte("y")}}))
	mustImport(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"x:1": x})), ImportOptions{})
	dirs, err := daemon.LayerDirs("x:1")
	if err != nil {
		t.Fatal(err)
	}
	pins.set(dirs) // a container of x
	if err := daemon.Remove("x:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatalf("the pinned layer went with its image: %v", err)
	}
	commits := 0
	im.s.beforeCommit = func() {
		if commits++; commits == 1 {
			pins.set(nil) // the container goes, and its layer with it
			daemon.Collect()
			if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
				t.Errorf("the unpinned layer is still there: %v", err)
			}
		}
	}
	imgs := mustImport(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"y:1": y})), ImportOptions{})
	if commits != 2 {
		t.Fatalf("%d commits, want 2: the first finds the layer gone", commits)
	}
	got, err := daemon.LayerDirs("y:1")
	if err != nil || got[1] != dirs[0] || imgs[0].ID != configID(t, y) {
		t.Fatalf("LayerDirs(y:1) = %v, %v; want the base layer %s at the bottom", got, err, dirs[0])
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "base")); err != nil {
		t.Fatal(err)
	}
	if n := harness.CheckImageStore(t, root); n != 1 {
		t.Fatalf("the store holds %d images", n)
	}
}

// randomLayer is a layer of 32 KiB of random bytes.
func randomLayer(t *testing.T, seed uint64) v1.Layer {
	t.Helper()
	layers, err := testregistry.Random(t, 1, 32<<10, seed).Layers()
	if err != nil {
		t.Fatal(err)
	}
	return layers[0]
}
