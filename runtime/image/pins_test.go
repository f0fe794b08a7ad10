package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

// fakePins stands for the container records.
type fakePins struct {
	mu    sync.Mutex
	dirs  []string
	calls int
}

func (p *fakePins) LayersInUse() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return slices.Clone(p.dirs)
}

func (p *fakePins) set(dirs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs = dirs
}

func (p *fakePins) callCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// TestPinnedLayersOutliveTheirImage: removing an image whose layers a
// container uses drops the image and keeps the layers (issue 12 #6), also
// across a reopen, until the last pin goes and Collect runs.
func TestPinnedLayersOutliveTheirImage(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "pins/a:1", testregistry.Random(t, 2, 32<<10, 21))
	dir := t.TempDir()
	pins := &fakePins{}
	s, _, err := Open(dir, config.Registry{}, config.Image{}, NodePlatform(), pins)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	img, err := s.Pull(ctx, ref, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	dirs, release, err := s.HoldLayers(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.LayerDirs(ref)
	if !slices.Equal(dirs, want) || len(dirs) != 2 {
		t.Fatalf("HoldLayers %v, LayerDirs %v", dirs, want)
	}
	// Held, not yet pinned (a create between lookup and record).
	if err := s.Remove(ref); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(img.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	requireDirs(t, dirs, true, "held during Remove")
	pins.set(dirs) // the record is written ...
	release()      // ... and the hold let go
	release()      // twice is harmless
	requireDirs(t, dirs, true, "pinned after the hold")

	// A reopen (a daemon restart) asks the pins before collecting.
	s, _, err = Open(dir, config.Registry{}, config.Image{}, NodePlatform(), pins)
	if err != nil {
		t.Fatal(err)
	}
	requireDirs(t, dirs, true, "pinned across a reopen")
	if len(s.List()) != 0 {
		t.Fatalf("the removed image is back: %v", s.List())
	}
	if u := s.Usage(); u.Bytes < 64<<10 {
		t.Fatalf("usage %+v leaves out the pinned layers", u)
	}

	// The last container goes.
	pins.set(nil)
	s.Collect()
	requireDirs(t, dirs, false, "after the last pin went")
	for _, sub := range []string{"blobs/sha256", "layers/sha256", "trash"} {
		if left := entriesIn(t, filepath.Join(dir, sub)); len(left) > 0 {
			t.Errorf("%s not empty: %v", sub, left)
		}
	}
	// Nothing deferred: Collect does not even ask.
	before := pins.callCount()
	s.Collect()
	if pins.callCount() != before {
		t.Fatal("Collect with nothing deferred asked the pins")
	}
}

// TestHoldReleasedAfterFailedCreate: a hold whose container never came to
// be (create failed) lets the layers of a removed image go on release.
func TestHoldReleasedAfterFailedCreate(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "pins/b:1", testregistry.Random(t, 1, 16<<10, 22))
	dir := t.TempDir()
	s, _, err := Open(dir, config.Registry{}, config.Image{}, NodePlatform(), &fakePins{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), ref, Auth{}); err != nil {
		t.Fatal(err)
	}
	dirs, release, err := s.HoldLayers(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ref); err != nil {
		t.Fatal(err)
	}
	requireDirs(t, dirs, true, "held during Remove")
	release()
	requireDirs(t, dirs, false, "after the release")
	if _, _, err := s.HoldLayers(ref); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("HoldLayers of a removed image: %v", err)
	}
}

func requireDirs(t *testing.T, dirs []string, present bool, when string) {
	t.Helper()
	for _, d := range dirs {
		_, err := os.Stat(d)
		if present && err != nil {
			t.Fatalf("%s: layer %s: %v", when, d, err)
		}
		if !present && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: layer %s still there (%v)", when, d, err)
		}
	}
}
