package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/test/testregistry"
)

// Regressions of a review of `crib image import`: a small archive must not
// take gigabytes of memory by naming one document, or long names, many
// times.

// dockerManifest is a manifest.json of n entries, each of config and
// layers.
func dockerManifest(t *testing.T, n int, config func(i int) string, layers ...string) func(*tar.Writer) {
	entries := make([]map[string]any, n)
	for i := range entries {
		entries[i] = map[string]any{"Config": config(i), "RepoTags": []string{fmt.Sprintf("x:%d", i)}, "Layers": layers}
	}
	b, err := json.Marshal(entries)
	must(t, err)
	return file(t, "manifest.json", string(b))
}

// bigConfig is an image config of about size bytes.
func bigConfig(size int) string {
	return `{"architecture":"` + goruntime.GOARCH + `","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":"` +
		strings.Repeat("a", size) + `"}`
}

// TestOneImageListedManyTimes: entries that make one manifest are one
// image with all their names, its config read once (300 entries of one
// 8 MiB config took 3.7 GiB).
func TestOneImageListedManyTimes(t *testing.T) {
	data := hostileTar(t, file(t, "c.json", bigConfig(1<<20)),
		dockerManifest(t, 300, func(int) string { return "c.json" }))
	a, err := ReadTar(context.Background(), bytes.NewReader(testregistry.Gzip(t, data)), t.TempDir(), host, noLimits)
	must(t, err)
	if len(a.Images) != 1 || len(a.Images[0].Names) != 300 || a.Images[0].Names[299] != "x:299" {
		t.Fatalf("%d images, want 1 with 300 names", len(a.Images))
	}
	if got := maxDocuments - a.docLeft; got > 2<<20 {
		t.Fatalf("%d bytes of documents read, want the config once", got)
	}
}

// TestOneDocumentUnderManyNames: "c.json", "./c.json" and "x/../c.json"
// are one file, read once.
func TestOneDocumentUnderManyNames(t *testing.T) {
	names := []string{"c.json", "./c.json", "x/../c.json"}
	data := hostileTar(t, file(t, "c.json", bigConfig(1<<20)),
		dockerManifest(t, 30, func(i int) string { return names[i%len(names)] }))
	a, err := ReadTar(context.Background(), bytes.NewReader(data), t.TempDir(), host, noLimits)
	must(t, err)
	if got := maxDocuments - a.docLeft; got > 2<<20 {
		t.Fatalf("%d bytes of documents read, want the config once", got)
	}
}

// TestDocumentsBounded: one large config named through many links is
// refused once the documents come to maxDocuments, naming the bound.
func TestDocumentsBounded(t *testing.T) {
	entries := []func(*tar.Writer){file(t, "c.json", bigConfig(7<<20))}
	for i := range 12 {
		entries = append(entries, symlink(t, fmt.Sprintf("c%d.json", i), "c.json"))
	}
	entries = append(entries, dockerManifest(t, 12, func(i int) string { return fmt.Sprintf("c%d.json", i) }))
	_, err := ReadTar(context.Background(), bytes.NewReader(hostileTar(t, entries...)), t.TempDir(), host, noLimits)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "documents may have together") {
		t.Fatalf("err %v, want the documents' bound named", err)
	}
}

// TestArchiveBounds: the images an archive lists, an image's layers, and
// the names and link targets of a tar are bounded, each refused by name.
func TestArchiveBounds(t *testing.T) {
	cfg := file(t, "c.json", bigConfig(0))
	layer := file(t, "l.tar", "")
	manyLayers := make([]string, 129)
	for i := range manyLayers {
		manyLayers[i] = "l.tar"
	}
	longTarget := strings.Repeat("a/", 2100)
	manyNames := []func(*tar.Writer){}
	for i := range 4200 {
		manyNames = append(manyNames, symlink(t, fmt.Sprintf("s%d", i), strings.Repeat("b", 4000)))
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		words []string
	}{
		{"images", hostileTar(t, cfg, dockerManifest(t, maxImages+1, func(int) string { return "c.json" })), []string{"1025 images", "more than the 1024"}},
		{"layers", hostileTar(t, cfg, layer, dockerManifest(t, 1, func(int) string { return "c.json" }, manyLayers...)), []string{"129 layers", "more than the 128"}},
		{"long name", hostileTar(t, file(t, strings.Repeat("n", 5000), "")), []string{"name of 5000 bytes", "PATH_MAX"}},
		{"long link target", hostileTar(t, symlink(t, "s", longTarget)), []string{"link target of 4200 bytes", "PATH_MAX"}},
		{"names together", hostileTar(t, manyNames...), []string{"names and link targets come to more than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTar(context.Background(), bytes.NewReader(tc.data), t.TempDir(), host, noLimits)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err %v, want InvalidArgument", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if len(err.Error()) > 1024 {
				t.Errorf("an error of %d bytes", len(err.Error()))
			}
		})
	}
}

// TestOCILayersBounded: an OCI manifest of more layers than the limit is
// refused before any is looked for.
func TestOCILayersBounded(t *testing.T) {
	img := testregistry.Random(t, 3, 1<<10, 8)
	dir := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img})
	_, err := OpenLayout(dir, host, Limits{Bytes: 1 << 30, Layers: 2})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "3 layers, more than the 2") {
		t.Fatalf("err %v, want the layers' bound named", err)
	}
}

// TestBudgetRefusesNegativeSizes: a size below zero (archive/tar refuses
// such headers, but the budget is not to rely on it) would add to what is
// left instead of charging it.
func TestBudgetRefusesNegativeSizes(t *testing.T) {
	b := newBudget(Limits{Bytes: 10})
	if err := b.take(-1 << 40); err == nil || b.left != 10 {
		t.Fatalf("take(-2^40) = %v, %d left; want refused, 10 left", err, b.left)
	}
	if err := b.take(10); err != nil || b.left != 0 {
		t.Fatalf("take(10) = %v, %d left", err, b.left)
	}
}
