package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/test/testregistry"
)

// Regressions of a review of `crib image import`: what a hostile archive
// may cost is bounded, and an import stops when asked to.

// TestImportSpoolBounded: a gzip bomb is refused at the import's limit,
// ResourceExhausted, and the store is left as it was.
func TestImportSpoolBounded(t *testing.T) {
	_, dir := importRoot(t)
	im := openImporter(t, dir)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	testregistry.TarFile(t, tw, "manifest.json", []byte(`[]`))
	testregistry.TarFile(t, tw, "zeros", make([]byte, 16<<20))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	im.s.importBytes = 1 << 20
	before := storeState(t, dir)
	_, err := importTar(t, im, testregistry.Gzip(t, buf.Bytes()), ImportOptions{})
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "more than 1048576 bytes") {
		t.Fatalf("err %v, want the limit named", err)
	}
	if after := storeState(t, dir); after != before {
		t.Fatalf("the store changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestImportLimitIsFreeSpace: without a test's limit, an import may
// write what the store's filesystem has free, less a reserve.
func TestImportLimitIsFreeSpace(t *testing.T) {
	s, err := newStore(t.TempDir(), config.Image{}, NodePlatform())
	if err != nil {
		t.Fatal(err)
	}
	lim, err := s.importLimits()
	if err != nil {
		t.Fatal(err)
	}
	if lim.Layers != maxLayers || !strings.Contains(lim.BytesWhy, "free on the filesystem of "+s.dir) {
		t.Fatalf("limits %+v", lim)
	}
	if !strings.Contains(lim.BytesWhy, "less a reserve") || lim.Bytes < 0 {
		t.Fatalf("limits %+v", lim)
	}
}

// cancelAfter reads r and cancels once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// TestImportStopsOnCancel: an import whose context ends while it spools
// (SIGINT, SIGTERM) stops with the context's error and leaves the store
// as it was, its work directory removed.
func TestImportStopsOnCancel(t *testing.T) {
	_, dir := importRoot(t)
	im := openImporter(t, dir)
	data := readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"big:1": testregistry.Random(t, 2, 4<<20, 70)}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := storeState(t, dir)
	_, err := im.ImportTar(ctx, &cancelAfter{r: bytes.NewReader(data), n: len(data) / 2, cancel: cancel}, ImportOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if after := storeState(t, dir); after != before {
		t.Fatalf("the store changed:\nbefore %s\nafter  %s", before, after)
	}
}

// TestPullLayersBounded: an image of more layers than maxLayers is
// refused by checkImage, which pulls and imports share.
func TestPullLayersBounded(t *testing.T) {
	img := testregistry.Random(t, maxLayers+1, 16, 71)
	rawManifest, _ := img.RawManifest()
	rawConfig, _ := img.RawConfigFile()
	_, err := checkImage(rawManifest, rawConfig)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "129 layers, more than the 128") {
		t.Fatalf("err %v, want the layers' bound named", err)
	}
}
