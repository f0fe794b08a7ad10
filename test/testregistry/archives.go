package testregistry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Archives for `crib image import` tests: docker save's format, OCI
// layouts and tars of them, built with go-containerregistry's writers
// where it has one.

// DockerArchive writes docker save's format (manifest.json with Config,
// RepoTags and Layers; go-containerregistry's tarball writer, which names
// files by digest and gzips layers) holding each image under its tags,
// and returns the file's path.
func DockerArchive(t testing.TB, tags map[string]v1.Image) string {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for tag, img := range tags {
		ref, err := name.ParseReference(tag)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
	}
	p := filepath.Join(t.TempDir(), "docker-archive.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		t.Fatal(err)
	}
	return p
}

// Saved is an image and the tags docker save gives it.
type Saved struct {
	Tags  []string
	Image v1.Image
}

// DockerSave writes what Docker 20.10's docker save writes: a config
// "<id>.json", each layer an uncompressed "<v1 id>/layer.tar" beside
// VERSION and json files, manifest.json and repositories. A layer's v1 ID
// derives from its parent's and, for an image's top layer, from the
// image's config: a v1 directory two images share is written once, and
// a layer already written under another v1 ID is a symlink
// "../<that v1 id>/layer.tar".
func DockerSave(t testing.TB, images ...Saved) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	repos := map[string]map[string]string{}
	written := map[string]string{} // diff ID → v1 id
	dirs := map[string]bool{}      // v1 ids written
	for _, s := range images {
		cfg, err := s.Image.RawConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		id := sha256Hex(cfg)
		e := entry{Config: id + ".json", RepoTags: s.Tags}
		TarFile(t, tw, e.Config, cfg)
		layers, err := s.Image.Layers()
		if err != nil {
			t.Fatal(err)
		}
		parent := ""
		for i, l := range layers {
			diffID, err := l.DiffID()
			if err != nil {
				t.Fatal(err)
			}
			top := ""
			if i == len(layers)-1 {
				top = id
			}
			v1id := sha256Hex([]byte(parent + diffID.String() + top))
			parent = v1id
			e.Layers = append(e.Layers, v1id+"/layer.tar")
			if dirs[v1id] {
				continue
			}
			dirs[v1id] = true
			TarEntry(t, tw, &tar.Header{Name: v1id + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
			TarFile(t, tw, v1id+"/VERSION", []byte("1.0"))
			TarFile(t, tw, v1id+"/json", []byte(`{"id":"`+v1id+`"}`))
			if prev, ok := written[diffID.String()]; ok {
				TarEntry(t, tw, &tar.Header{Name: v1id + "/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../" + prev + "/layer.tar"}, nil)
				continue
			}
			written[diffID.String()] = v1id
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			TarFile(t, tw, v1id+"/layer.tar", data)
		}
		for _, tag := range s.Tags {
			repo, tg, _ := strings.Cut(tag, ":")
			if repos[repo] == nil {
				repos[repo] = map[string]string{}
			}
			repos[repo][tg] = parent
		}
		manifest = append(manifest, e)
	}
	TarFile(t, tw, "manifest.json", mustJSON(t, manifest))
	TarFile(t, tw, "repositories", mustJSON(t, repos))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// LayoutEntry is one entry of an OCI layout's index.json: an image or an
// index, with the annotations and platform of its descriptor.
type LayoutEntry struct {
	Image       v1.Image
	Index       v1.ImageIndex
	Annotations map[string]string
	Platform    *v1.Platform
}

// OCILayout writes an OCI image layout in dir (go-containerregistry's
// layout writer) whose index.json lists the entries, and returns dir.
func OCILayout(t testing.TB, dir string, entries ...LayoutEntry) string {
	t.Helper()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var opts []layout.Option
		if e.Annotations != nil {
			opts = append(opts, layout.WithAnnotations(e.Annotations))
		}
		if e.Platform != nil {
			opts = append(opts, layout.WithPlatform(*e.Platform))
		}
		if e.Index != nil {
			err = p.AppendIndex(e.Index, opts...)
		} else {
			err = p.AppendImage(e.Image, opts...)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// MultiPlatform is an index of the images, each under the platform its
// config names (see ForPlatform).
func MultiPlatform(t testing.TB, images ...v1.Image) v1.ImageIndex {
	t.Helper()
	idx := v1.ImageIndex(empty.Index)
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: cf.Platform()}})
	}
	return idx
}

// ForPlatform is img with its config saying it is for p.
func ForPlatform(t testing.TB, img v1.Image, p v1.Platform) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TarDir is a tar of the files under dir (an OCI archive of a layout),
// gzip-compressed when gz is set.
func TarDir(t testing.TB, dir string, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			TarEntry(t, tw, &tar.Header{Name: rel + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		TarFile(t, tw, rel, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if gz {
		return Gzip(t, buf.Bytes())
	}
	return buf.Bytes()
}

// Gzip compresses data.
func Gzip(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TarFile writes a regular file entry.
func TarFile(t testing.TB, tw *tar.Writer, name string, data []byte) {
	t.Helper()
	TarEntry(t, tw, &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, data)
}

// TarEntry writes an entry as given (hostile ones included), with data
// as a regular file's content.
func TarEntry(t testing.TB, tw *tar.Writer, hdr *tar.Header, data []byte) {
	t.Helper()
	hdr.Size = int64(len(data))
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatalf("tar entry %s: %v", hdr.Name, err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
