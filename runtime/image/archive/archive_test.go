package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/test/testregistry"
)

var host = v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}

// foreign is a platform that is not this host's.
var foreign = v1.Platform{OS: "linux", Architecture: "s390x"}

// noLimits bounds nothing a test archive reaches.
var noLimits = Limits{Bytes: 1 << 40, BytesWhy: "the test's", Layers: 128}

func readBytes(t *testing.T, data []byte) (*Archive, error) {
	t.Helper()
	return ReadTar(context.Background(), bytes.NewReader(data), t.TempDir(), host, noLimits)
}

func mustRead(t *testing.T, data []byte) *Archive {
	t.Helper()
	a, err := readBytes(t, data)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// checkBlobs writes every layer blob of the archive and checks the
// manifest names them.
func checkBlobs(t *testing.T, a *Archive) {
	t.Helper()
	dir := t.TempDir()
	for _, img := range a.Images {
		var m v1.Manifest
		if err := json.Unmarshal(img.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		if hashOf(img.Manifest).String() != img.ManifestDigest || hashOf(img.Config) != m.Config.Digest {
			t.Fatalf("%s: manifest or config digest wrong", img.Where)
		}
		if len(m.Layers) != len(img.Layers) || len(img.Layers) == 0 {
			t.Fatalf("%s: %d layers in the manifest, %d found", img.Where, len(m.Layers), len(img.Layers))
		}
		for i, l := range img.Layers {
			if l.Digest != m.Layers[i].Digest.String() {
				t.Fatalf("%s: layer %d is %s, the manifest says %s", img.Where, i, l.Digest, m.Layers[i].Digest)
			}
			if err := a.WriteBlob(context.Background(), l, filepath.Join(dir, strconv.Itoa(i)+img.Where)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestReadDockerArchive(t *testing.T) {
	a := mustRead(t, mustFile(t, testregistry.DockerArchive(t, map[string]v1.Image{
		"busybox:1":               testregistry.Random(t, 2, 16<<10, 1),
		"example.com/app/web:2.0": testregistry.Random(t, 1, 16<<10, 2),
	})))
	if a.Format != DockerArchive || len(a.Images) != 2 {
		t.Fatalf("format %s, %d images", a.Format, len(a.Images))
	}
	var names []string
	for _, img := range a.Images {
		names = append(names, img.Names...)
		if img.Resolved != "" {
			t.Errorf("%s: a docker-archive image has no registry digest, got %s", img.Where, img.Resolved)
		}
	}
	if strings.Join(names, ",") != "busybox:1,example.com/app/web:2.0" && strings.Join(names, ",") != "example.com/app/web:2.0,busybox:1" {
		t.Fatalf("names %v", names)
	}
	checkBlobs(t, a)
}

// TestReadDockerSave reads Docker 20.10's layout: uncompressed layers in
// v1 directories, a shared layer written once and linked by a symlink.
func TestReadDockerSave(t *testing.T) {
	base := testregistry.Layer(t, []testregistry.File{{Name: "base", Mode: 0o644, Data: []byte("base")}})
	one := testregistry.ImageOf(t, v1.Config{}, base)
	two := testregistry.ImageOf(t, v1.Config{Cmd: []string{"two"}}, base,
		testregistry.Layer(t, []testregistry.File{{Name: "two", Mode: 0o644, Data: []byte("2")}}))
	data := testregistry.DockerSave(t, testregistry.Saved{Tags: []string{"one:1"}, Image: one},
		testregistry.Saved{Tags: []string{"two:1", "two:latest"}, Image: two})
	if !bytes.Contains(data, []byte("../")) {
		t.Fatal("the archive has no symlink to a layer of the first image")
	}
	for _, gz := range []bool{false, true} {
		in := data
		if gz {
			in = testregistry.Gzip(t, data)
		}
		a := mustRead(t, in)
		if a.Format != DockerArchive || len(a.Images) != 2 || len(a.Images[1].Names) != 2 {
			t.Fatalf("gzip %v: %s, %+v", gz, a.Format, a.Images)
		}
		var m v1.Manifest
		_ = json.Unmarshal(a.Images[0].Manifest, &m)
		if m.Layers[0].MediaType != "application/vnd.docker.image.rootfs.diff.tar" {
			t.Fatalf("an uncompressed layer's media type is %s", m.Layers[0].MediaType)
		}
		if a.Images[0].Layers[0].Digest != a.Images[1].Layers[0].Digest {
			t.Fatal("the shared layer differs between the images")
		}
		checkBlobs(t, a)
	}
}

func TestReadOCI(t *testing.T) {
	native := testregistry.Random(t, 1, 16<<10, 3)
	other := testregistry.ForPlatform(t, testregistry.Random(t, 1, 16<<10, 4), foreign)
	single := testregistry.Random(t, 2, 16<<10, 5)
	idx := testregistry.MultiPlatform(t, other, native)
	dir := testregistry.OCILayout(t, t.TempDir(),
		testregistry.LayoutEntry{Index: idx, Annotations: map[string]string{annotationContainerdName: "docker.io/library/multi:1", annotationRefName: "1"}},
		testregistry.LayoutEntry{Image: single, Annotations: map[string]string{annotationRefName: "v2"}},
		testregistry.LayoutEntry{Image: other, Platform: &foreign})
	idxDigest, _ := idx.Digest()
	nativeID, _ := native.ConfigName()
	check := func(t *testing.T, a *Archive) {
		t.Helper()
		if len(a.Images) != 2 || len(a.Skipped) != 1 || !strings.Contains(a.Skipped[0], "linux/s390x") {
			t.Fatalf("images %d, skipped %v", len(a.Images), a.Skipped)
		}
		multi, tagged := a.Images[0], a.Images[1]
		if hashOf(multi.Config) != nativeID || multi.Resolved != idxDigest.String() || multi.Names[0] != "docker.io/library/multi:1" {
			t.Fatalf("multi-platform image: config %s (want %s), resolved %s (want %s), names %v",
				hashOf(multi.Config), nativeID, multi.Resolved, idxDigest, multi.Names)
		}
		if len(tagged.RefNames) != 1 || tagged.RefNames[0] != "v2" || len(tagged.Names) != 0 || tagged.Resolved != tagged.ManifestDigest {
			t.Fatalf("tagged image %+v", tagged)
		}
		checkBlobs(t, a)
	}
	t.Run("layout", func(t *testing.T) {
		a, err := OpenLayout(dir, host, noLimits)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if a.Format != OCILayout {
			t.Fatalf("format %s", a.Format)
		}
		check(t, a)
	})
	for _, gz := range []bool{false, true} {
		t.Run("archive gzip="+strconv.FormatBool(gz), func(t *testing.T) {
			a := mustRead(t, testregistry.TarDir(t, dir, gz))
			if a.Format != OCIArchive {
				t.Fatalf("format %s", a.Format)
			}
			check(t, a)
		})
	}
}

// hostileTar builds a tar from entries given as header and content.
func hostileTar(t *testing.T, entries ...func(*tar.Writer)) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e(tw)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(t *testing.T, name, data string) func(*tar.Writer) {
	return func(tw *tar.Writer) { testregistry.TarFile(t, tw, name, []byte(data)) }
}

func symlink(t *testing.T, name, target string) func(*tar.Writer) {
	return func(tw *tar.Writer) {
		testregistry.TarEntry(t, tw, &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}, nil)
	}
}

// TestReadHostileTar: names that are absolute or lead out of the archive,
// in entries, links or manifest.json, are refused by name; nothing is
// written but numbered spool files.
func TestReadHostileTar(t *testing.T) {
	cfg := `{"architecture":"` + goruntime.GOARCH + `","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`
	manifest := func(config string, layers ...string) func(*tar.Writer) {
		b, _ := json.Marshal([]map[string]any{{"Config": config, "RepoTags": []string{"x:1"}, "Layers": layers}})
		return file(t, "manifest.json", string(b))
	}
	for _, tc := range []struct {
		name  string
		data  []byte
		kind  error
		words []string
	}{
		{"not a tar", []byte("this is not an archive at all, not even close......"), errdefs.ErrInvalidArgument, []string{"not a tar archive"}},
		{"empty input", nil, errdefs.ErrInvalidArgument, []string{"not a tar archive"}},
		{"gzip of garbage", testregistry.Gzip(t, []byte("garbage garbage garbage")), errdefs.ErrInvalidArgument, []string{"not a tar archive"}},
		{"no image files", hostileTar(t, file(t, "hello.txt", "hi")), errdefs.ErrInvalidArgument, []string{"neither oci-layout", "manifest.json"}},
		{"dot-dot entry", hostileTar(t, file(t, "../evil", "x"), manifest("c.json")), errdefs.ErrInvalidArgument, []string{`"../evil"`, "leads outside the archive"}},
		{"nested dot-dot entry", hostileTar(t, file(t, "a/../../evil", "x")), errdefs.ErrInvalidArgument, []string{"leads outside the archive"}},
		{"absolute entry", hostileTar(t, file(t, "/etc/passwd", "x")), errdefs.ErrInvalidArgument, []string{`"/etc/passwd"`, "absolute path"}},
		{"symlink out", hostileTar(t, symlink(t, "l/layer.tar", "../../etc/passwd")), errdefs.ErrInvalidArgument, []string{"symlink", "leads outside the archive"}},
		{"absolute symlink", hostileTar(t, symlink(t, "layer.tar", "/etc/passwd")), errdefs.ErrInvalidArgument, []string{"symlink", "absolute target"}},
		{"hard link out", hostileTar(t, func(tw *tar.Writer) {
			testregistry.TarEntry(t, tw, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../etc/shadow"}, nil)
		}), errdefs.ErrInvalidArgument, []string{"hard link", "leads outside the archive"}},
		{"duplicate entries", hostileTar(t, file(t, "c.json", cfg), file(t, "./c.json", cfg)), errdefs.ErrInvalidArgument, []string{"two entries named", "c.json"}},
		{"config path out", hostileTar(t, file(t, "c.json", cfg), manifest("../c.json")), errdefs.ErrInvalidArgument, []string{"manifest.json entry 0", `"../c.json"`, "leads outside the archive"}},
		{"config path absolute", hostileTar(t, manifest("/etc/passwd")), errdefs.ErrInvalidArgument, []string{"absolute path"}},
		{"layer path out", hostileTar(t, file(t, "c.json", cfg), manifest("c.json", "../../layer.tar")), errdefs.ErrInvalidArgument, []string{"leads outside the archive"}},
		{"missing layer", hostileTar(t, file(t, "c.json", cfg), manifest("c.json", "gone/layer.tar")), errdefs.ErrNotFound, []string{"gone/layer.tar", "missing from the archive"}},
		{"symlink loop", hostileTar(t, file(t, "c.json", cfg), symlink(t, "a", "b"), symlink(t, "b", "a"), manifest("c.json", "a")), errdefs.ErrInvalidArgument, []string{"links"}},
		{"layer is a FIFO entry", hostileTar(t, file(t, "c.json", cfg), func(tw *tar.Writer) {
			testregistry.TarEntry(t, tw, &tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}, nil)
		}, manifest("c.json", "fifo")), errdefs.ErrInvalidArgument, []string{"fifo", "not a regular file"}},
		{"foreign layers", hostileTar(t, file(t, "c.json", cfg), file(t, "manifest.json", `[{"Config":"c.json","Layers":[],"LayerSources":{"sha256:00":{}}}]`)),
			errdefs.ErrNotImplemented, []string{"foreign layers"}},
		{"no image", hostileTar(t, file(t, "manifest.json", `[]`)), errdefs.ErrInvalidArgument, []string{"lists no image"}},
		{"other platform", hostileTar(t, file(t, "c.json", strings.Replace(cfg, goruntime.GOARCH, "s390x", 1)), manifest("c.json")),
			errdefs.ErrNotFound, []string{"no image for linux/" + goruntime.GOARCH, "linux/s390x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spool := t.TempDir()
			_, err := ReadTar(context.Background(), bytes.NewReader(tc.data), spool, host, noLimits)
			if err == nil || !errors.Is(err, tc.kind) {
				t.Fatalf("err %v, want one of kind %v", err, tc.kind)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			entries, _ := os.ReadDir(spool)
			for _, e := range entries {
				if _, err := strconv.Atoi(e.Name()); err != nil || e.IsDir() {
					t.Errorf("spool holds %q: only numbered files are written", e.Name())
				}
			}
		})
	}
}

// TestReadOCIBadBlobs: a layout whose blobs are missing, altered or of
// media types crib does not run is refused, naming the blob.
func TestReadOCIBadBlobs(t *testing.T) {
	img := testregistry.Random(t, 1, 16<<10, 6)
	layers, _ := img.Layers()
	layerDigest, _ := layers[0].Digest()
	cfgDigest, _ := img.ConfigName()
	layerBlob := func(dir string) string { return filepath.Join(dir, "blobs", "sha256", layerDigest.Hex) }
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		kind   error
		words  []string
		atRead bool // refused by OpenLayout, else by WriteBlob
	}{
		{"missing layer", func(t *testing.T, dir string) { must(t, os.Remove(layerBlob(dir))) }, errdefs.ErrNotFound, []string{layerDigest.Hex, "missing"}, true},
		{"missing config", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "blobs", "sha256", cfgDigest.Hex)))
		}, errdefs.ErrNotFound, []string{cfgDigest.Hex}, true},
		{"altered layer", func(t *testing.T, dir string) { flipByte(t, layerBlob(dir)) }, errdefs.ErrDataLoss, []string{layerDigest.String(), "digest mismatch"}, false},
		{"altered config", func(t *testing.T, dir string) { flipByte(t, filepath.Join(dir, "blobs", "sha256", cfgDigest.Hex)) }, errdefs.ErrDataLoss, []string{cfgDigest.String(), "digest mismatch"}, true},
		{"layer is a FIFO", func(t *testing.T, dir string) {
			must(t, os.Remove(layerBlob(dir)))
			must(t, unix.Mkfifo(layerBlob(dir), 0o600))
		}, errdefs.ErrInvalidArgument, []string{"not a regular file"}, true},
		{"layer symlinks out", func(t *testing.T, dir string) {
			// The same content outside the layout: following the link
			// would succeed. It resolves inside the layout instead.
			outside := filepath.Join(t.TempDir(), "blob")
			must(t, os.Rename(layerBlob(dir), outside))
			must(t, os.Symlink(outside, layerBlob(dir)))
		}, errdefs.ErrNotFound, []string{"missing"}, true},
		{"artifact manifest", func(t *testing.T, dir string) {
			editIndex(t, dir, func(d *v1.Descriptor) { d.MediaType = "application/vnd.example.artifact.v1+json" })
		}, errdefs.ErrNotImplemented, []string{"unsupported media type", "application/vnd.example.artifact.v1+json"}, true},
		{"sha512 digest", func(t *testing.T, dir string) {
			editIndex(t, dir, func(d *v1.Descriptor) { d.Digest = v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("ab", 64)} })
		}, errdefs.ErrNotImplemented, []string{"only sha256"}, true},
		{"no oci-layout", func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "oci-layout"))) }, errdefs.ErrInvalidArgument, []string{"no oci-layout"}, true},
		{"other platform only", func(t *testing.T, dir string) {
			editIndex(t, dir, func(d *v1.Descriptor) { d.Platform = &foreign })
		}, errdefs.ErrNotFound, []string{"no image for", "linux/s390x"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img})
			tc.change(t, dir)
			a, err := OpenLayout(dir, host, noLimits)
			if err == nil {
				defer a.Close()
				if tc.atRead {
					t.Fatal("OpenLayout accepted the layout")
				}
				err = a.WriteBlob(context.Background(), a.Images[0].Layers[0], filepath.Join(t.TempDir(), "blob"))
			}
			if err == nil || !errors.Is(err, tc.kind) {
				t.Fatalf("err %v, want one of kind %v", err, tc.kind)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}

func editIndex(t *testing.T, dir string, edit func(*v1.Descriptor)) {
	t.Helper()
	p := filepath.Join(dir, "index.json")
	data, err := os.ReadFile(p)
	must(t, err)
	var idx v1.IndexManifest
	must(t, json.Unmarshal(data, &idx))
	edit(&idx.Manifests[0])
	data, err = json.Marshal(idx)
	must(t, err)
	must(t, os.WriteFile(p, data, 0o644))
}

func flipByte(t *testing.T, p string) {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	data[len(data)/2] ^= 0xff
	must(t, os.WriteFile(p, data, 0o644))
}

func mustFile(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	return data
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
