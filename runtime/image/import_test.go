package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

var foreignPlatform = v1.Platform{OS: "linux", Architecture: "s390x"}

// importRoot is a crib root for import tests; the store is its images/,
// where harness.CheckImageStore looks.
func importRoot(t *testing.T) (root, dir string) {
	t.Helper()
	testutil.RequireRoot(t) // layers are unpacked with their owners
	root = t.TempDir()
	return root, filepath.Join(root, "images")
}

func openImporter(t *testing.T, dir string) *Importer {
	t.Helper()
	im, err := OpenImporter(dir, config.Image{}, NodePlatform())
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func importTar(t *testing.T, im *Importer, data []byte, opts ImportOptions) (Imported, error) {
	t.Helper()
	return im.ImportTar(context.Background(), bytes.NewReader(data), opts)
}

func mustImport(t *testing.T, im *Importer, data []byte, opts ImportOptions) []Image {
	t.Helper()
	out, err := importTar(t, im, data, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out.Images
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// configID is an image's ID as the store gives it.
func configID(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestImportFormats imports each format into a fresh store and finds the
// images by the names pods use, runnable (a layer with bin/busybox).
func TestImportFormats(t *testing.T) {
	busybox := testregistry.Busybox(t, "")
	other := testregistry.Random(t, 2, 32<<10, 41)
	saved := testregistry.DockerSave(t, testregistry.Saved{Tags: []string{"busybox:latest"}, Image: busybox},
		testregistry.Saved{Tags: []string{"quay.io/team/other:2"}, Image: other})
	layoutDir := testregistry.OCILayout(t, t.TempDir(),
		testregistry.LayoutEntry{Image: busybox, Annotations: map[string]string{"io.containerd.image.name": "docker.io/library/busybox:latest"}},
		testregistry.LayoutEntry{Image: other, Annotations: map[string]string{"org.opencontainers.image.ref.name": "quay.io/team/other:2"}})
	for _, tc := range []struct {
		name   string
		data   []byte // a tar, or nil for the layout directory
		digest bool   // the names get repo digests (an OCI manifest's)
	}{
		{"docker-archive go-containerregistry", readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"busybox": busybox, "quay.io/team/other:2": other})), false},
		{"docker save 20.10", saved, false},
		{"docker save 20.10 gzip", testregistry.Gzip(t, saved), false},
		{"oci layout", nil, true},
		{"oci archive", testregistry.TarDir(t, layoutDir, false), true},
		{"oci archive gzip", testregistry.TarDir(t, layoutDir, true), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, dir := importRoot(t)
			im := openImporter(t, dir)
			var out Imported
			var err error
			if tc.data == nil {
				out, err = im.ImportLayout(context.Background(), layoutDir, ImportOptions{})
			} else {
				out, err = importTar(t, im, tc.data, ImportOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Images) != 2 {
				t.Fatalf("imported %d images, want 2", len(out.Images))
			}
			s := openStore(t, dir, config.Registry{})
			for _, want := range []struct {
				ref, repo, id string
			}{{"busybox", "docker.io/library/busybox", configID(t, busybox)}, {"quay.io/team/other:2", "quay.io/team/other", configID(t, other)}} {
				img, err := s.Get(want.ref)
				if err != nil || img.ID != want.id {
					t.Fatalf("Get(%s) = %s, %v; want %s", want.ref, img.ID, err, want.id)
				}
				if hasDigest := len(img.RepoDigests) == 1 && strings.HasPrefix(img.RepoDigests[0], want.repo+"@sha256:"); hasDigest != tc.digest {
					t.Errorf("%s: repo digests %v", want.ref, img.RepoDigests)
				}
			}
			dirs, err := s.LayerDirs("busybox")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dirs[0], "bin", "busybox")); err != nil {
				t.Fatal(err)
			}
			if n := harness.CheckImageStore(t, root); n != 2 {
				t.Fatalf("store holds %d images", n)
			}
		})
	}
}

// TestImportPlatformAndNames: a multi-platform index gives the host's
// image; tag-only names take the base name or are refused; --name tags a
// single image; a tag moves from the image that had it.
func TestImportPlatformAndNames(t *testing.T) {
	root, dir := importRoot(t)
	im := openImporter(t, dir)
	native := testregistry.Random(t, 1, 16<<10, 42)
	idx := testregistry.MultiPlatform(t, testregistry.ForPlatform(t, testregistry.Random(t, 1, 16<<10, 43), foreignPlatform), native)
	multi := testregistry.TarDir(t, testregistry.OCILayout(t, t.TempDir(),
		testregistry.LayoutEntry{Index: idx, Annotations: map[string]string{"org.opencontainers.image.ref.name": "1.0"}}), false)

	_, err := importTar(t, im, multi, ImportOptions{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `only by the tag "1.0"`) {
		t.Fatalf("tag-only name without a base name: %v", err)
	}
	// --name names the image in full; the bare tag is then not used.
	imgs := mustImport(t, im, multi, ImportOptions{Name: "registry.example/named:x"})
	if !slices.Equal(imgs[0].RepoTags, []string{"registry.example/named:x"}) {
		t.Fatalf("--name over a tag-only name: %v", imgs[0].RepoTags)
	}
	imgs = mustImport(t, im, multi, ImportOptions{BaseName: "registry.example/multi"})
	idxDigest, _ := idx.Digest()
	if imgs[0].ID != configID(t, native) || !slices.Equal(imgs[0].RepoTags, []string{"registry.example/named:x", "registry.example/multi:1.0"}) ||
		!slices.Equal(imgs[0].RepoDigests, []string{"registry.example/named@" + idxDigest.String(), "registry.example/multi@" + idxDigest.String()}) {
		t.Fatalf("multi-platform import: %+v (want ID %s, the index's digest %s)", imgs[0], configID(t, native), idxDigest)
	}

	// An unnamed image, named by --name; the tag moves to it.
	unnamed := testregistry.Random(t, 1, 16<<10, 44)
	layout := testregistry.TarDir(t, testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: unnamed}), true)
	imgs = mustImport(t, im, layout, ImportOptions{Name: "registry.example/multi:1.0"})
	if imgs[0].ID != configID(t, unnamed) || !slices.Equal(imgs[0].RepoTags, []string{"registry.example/multi:1.0"}) {
		t.Fatalf("--name import: %+v", imgs[0])
	}
	s := openStore(t, dir, config.Registry{})
	if old, err := s.Get(configID(t, native)); err != nil || !slices.Equal(old.RepoTags, []string{"registry.example/named:x"}) || len(old.RepoDigests) != 2 {
		t.Fatalf("the image the tag left: %+v, %v", old, err)
	}
	// The same image again under another name: one image, two tags, its
	// content as first stored.
	before := readFile(t, filepath.Join(dir, "images.json"))
	imgs = mustImport(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"again:1": unnamed})), ImportOptions{})
	var idxDoc index
	_ = json.Unmarshal(before, &idxDoc)
	if imgs[0].ManifestDigest != idxDoc.Images[imgs[0].ID].ManifestDigest ||
		!slices.Equal(imgs[0].RepoTags, []string{"registry.example/multi:1.0", "docker.io/library/again:1"}) {
		t.Fatalf("re-import: %+v", imgs[0])
	}
	harness.CheckImageStore(t, root)

	// --name is for one image.
	two := readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"a:1": unnamed, "b:1": native}))
	if _, err := importTar(t, im, two, ImportOptions{Name: "c:1"}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "has 2") {
		t.Fatalf("--name with two images: %v", err)
	}
	// One tag for two images is ambiguous.
	clash := testregistry.DockerSave(t, testregistry.Saved{Tags: []string{"x:1"}, Image: unnamed}, testregistry.Saved{Tags: []string{"docker.io/library/x:1"}, Image: native})
	if _, err := importTar(t, im, clash, ImportOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "docker.io/library/x:1") {
		t.Fatalf("one tag for two images: %v", err)
	}
}

// storeState is what a failed import must leave as it was: the index and
// the content, and no work directory.
func storeState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	idx, _ := os.ReadFile(filepath.Join(dir, "images.json"))
	b.Write(idx)
	for _, sub := range []string{"blobs/sha256", "layers/sha256", "import", "ingest", "tmp", "trash"} {
		b.WriteString("\n" + sub + ":")
		for _, e := range entriesIn(t, filepath.Join(dir, sub)) {
			b.WriteString(" " + e)
		}
	}
	return b.String()
}

// TestImportBadInput: each bad archive is refused with an error naming
// what is wrong, and the store, which holds an image already, is left as
// it was, with no work directory.
func TestImportBadInput(t *testing.T) {
	root, dir := importRoot(t)
	im := openImporter(t, dir)
	good := testregistry.Random(t, 1, 16<<10, 45)
	mustImport(t, im, readFile(t, testregistry.DockerArchive(t, map[string]v1.Image{"good:1": good})), ImportOptions{})

	img := testregistry.Random(t, 2, 16<<10, 46)
	layers, _ := img.Layers()
	layerDigest, _ := layers[1].Digest()
	layoutWith := func(change func(dir string)) []byte {
		d := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img, Annotations: map[string]string{"io.containerd.image.name": "bad:1"}})
		change(d)
		return testregistry.TarDir(t, d, false)
	}
	blob := func(d string) string { return filepath.Join(d, "blobs", "sha256", layerDigest.Hex) }
	// A docker save whose config lists its diff IDs swapped: each layer
	// is not the one the config names.
	var diffBad []byte
	{
		cfg, _ := img.RawConfigFile()
		var cf map[string]any
		_ = json.Unmarshal(cfg, &cf)
		rootfs := cf["rootfs"].(map[string]any)
		ids := rootfs["diff_ids"].([]any)
		ids[0], ids[1] = ids[1], ids[0]
		bad, _ := json.Marshal(cf)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		testregistry.TarFile(t, tw, "c.json", bad)
		for i, l := range layers {
			rc, _ := l.Uncompressed()
			var data bytes.Buffer
			_, _ = data.ReadFrom(rc)
			rc.Close()
			testregistry.TarFile(t, tw, []string{"l0.tar", "l1.tar"}[i], data.Bytes())
		}
		testregistry.TarFile(t, tw, "manifest.json", []byte(`[{"Config":"c.json","RepoTags":["bad:1"],"Layers":["l0.tar","l1.tar"]}]`))
		_ = tw.Close()
		diffBad = buf.Bytes()
	}
	hostileLayer := testregistry.DockerSave(t, testregistry.Saved{Tags: []string{"bad:1"}, Image: testregistry.Image(t, [][]testregistry.File{
		{{Name: "ok", Mode: 0o644, Data: []byte("x")}},
		{{Name: "../../escape", Mode: 0o644, Data: []byte("x")}},
	})})
	onlyForeign := testregistry.TarDir(t, testregistry.OCILayout(t, t.TempDir(),
		testregistry.LayoutEntry{Index: testregistry.MultiPlatform(t, testregistry.ForPlatform(t, img, foreignPlatform))}), false)

	for _, tc := range []struct {
		name  string
		data  []byte
		kind  error
		words []string
	}{
		{"not an archive", []byte(strings.Repeat("not a tar ", 100)), errdefs.ErrInvalidArgument, []string{"not a tar archive"}},
		{"missing blob", layoutWith(func(d string) { _ = os.Remove(blob(d)) }), errdefs.ErrNotFound, []string{layerDigest.Hex, "missing"}},
		{"blob digest mismatch", layoutWith(func(d string) {
			data := readFile(t, blob(d))
			data[len(data)/2] ^= 0xff
			_ = os.WriteFile(blob(d), data, 0o644)
		}), errdefs.ErrDataLoss, []string{layerDigest.String(), "digest mismatch"}},
		{"diff ID mismatch", diffBad, errdefs.ErrDataLoss, []string{"diff ID mismatch"}},
		{"unsupported media type", layoutWith(func(d string) {
			p := filepath.Join(d, "index.json")
			_ = os.WriteFile(p, bytes.Replace(readFile(t, p), []byte("application/vnd.oci.image.manifest.v1+json"), []byte("application/vnd.example+json"), 1), 0o644)
		}), errdefs.ErrNotImplemented, []string{"unsupported media type", "application/vnd.example+json"}},
		{"no image for this platform", onlyForeign, errdefs.ErrNotFound, []string{"no image for linux/", "linux/s390x"}},
		{"manifest path escape", hostileTar(t, "manifest.json", `[{"Config":"../../etc/passwd","Layers":[]}]`), errdefs.ErrInvalidArgument, []string{`"../../etc/passwd"`, "leads outside the archive"}},
		// The unpacker's error has no kind, as in a pull.
		{"layer escaping its root", hostileLayer, nil, []string{"escapes the layer root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := storeState(t, dir)
			_, err := importTar(t, im, tc.data, ImportOptions{})
			if err == nil || tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Fatalf("err %v, want one of kind %v", err, tc.kind)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if after := storeState(t, dir); after != before {
				t.Fatalf("the store changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	harness.CheckImageStore(t, root)
	if _, err := os.Stat(filepath.Join(root, "escape")); err == nil {
		t.Fatal("a layer wrote outside its root")
	}
}

func hostileTar(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	testregistry.TarFile(t, tw, name, []byte(content))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
