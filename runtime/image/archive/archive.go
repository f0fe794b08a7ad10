package archive

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Format is the kind of an archive, as found from its content.
type Format string

// The formats read.
const (
	DockerArchive Format = "docker-archive" // docker save's tar
	OCIArchive    Format = "oci-archive"    // a tar of an OCI image layout
	OCILayout     Format = "oci-layout"     // an OCI image layout directory
)

// maxDocument bounds the JSON documents read into memory: manifest.json,
// index.json, manifests and image configs. A real one is a few kB.
const maxDocument = 8 << 20

// Archive is an opened archive: its images for the platform asked for.
type Archive struct {
	Format Format
	Images []Image
	// Skipped names the images left out because they are for another
	// platform, with theirs.
	Skipped []string
	src     source
}

// Image is one image of an archive, its manifest and config read and
// checked against their digests, its layers found in the archive.
type Image struct {
	// Where names the image in errors: "manifest.json entry 0",
	// "index.json manifest 1 (sha256:…)".
	Where string
	// Names are the references the archive gives the image, as written:
	// docker-archive's RepoTags, or index.json's io.containerd.image.name.
	Names []string
	// RefName is index.json's org.opencontainers.image.ref.name for an
	// image without io.containerd.image.name: a full reference, or only
	// a tag (skopeo's and oci layouts' habit).
	RefName string
	// Resolved is the digest a registry would resolve the image's name to:
	// the index's for a multi-platform image, else the manifest's. Empty
	// for docker-archive images, whose manifest the reader made.
	Resolved string
	// Manifest is the image manifest (for docker-archive images, one made
	// from manifest.json in Docker's schema 2), ManifestDigest its digest.
	Manifest       []byte
	ManifestDigest string
	Config         []byte
	Layers         []Blob // in the manifest's order
}

// Blob is a layer blob in an archive.
type Blob struct {
	Digest    string
	Size      int64
	MediaType string
	name      string // where the archive holds it
}

// source is an archive's files by name (clean, slash-separated, relative
// to the archive's root). Its errors name the file.
type source interface {
	// stat returns the size of a regular file.
	stat(name string) (int64, error)
	// read returns a regular file's content, refusing one over limit bytes.
	read(name string, limit int64) ([]byte, error)
	// put makes dst, a new file, hold a regular file's content and
	// returns its sha256 digest and size.
	put(name, dst string) (digest string, size int64, err error)
	close() error
}

// ReadTar reads a docker-archive or OCI archive, plain or gzip-compressed,
// from r to its end, spooling its files into spoolDir (an existing, empty
// directory the caller removes), and returns its images for platform.
func ReadTar(r io.Reader, spoolDir string, platform v1.Platform) (*Archive, error) {
	sp, err := readTar(r, spoolDir)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	a := &Archive{src: sp}
	switch {
	case sp.has("oci-layout"):
		a.Format = OCIArchive
		err = a.readOCI(platform)
	case sp.has("manifest.json"):
		a.Format = DockerArchive
		err = a.readDocker(sp, platform)
	default:
		err = fmt.Errorf("not an image archive: it has neither oci-layout (an OCI layout) nor manifest.json (docker save): %w",
			errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", a.describe(), err)
	}
	return a, nil
}

// OpenLayout opens the OCI image layout in dir and returns its images for
// platform. Close releases it.
func OpenLayout(dir string, platform v1.Platform) (*Archive, error) {
	d, err := openDir(dir)
	if err != nil {
		return nil, err
	}
	a := &Archive{Format: OCILayout, src: d}
	if !d.has("oci-layout") {
		err = fmt.Errorf("not an OCI image layout: no oci-layout file: %w", errdefs.ErrInvalidArgument)
		if d.has("manifest.json") {
			err = fmt.Errorf("docker save's format is imported from its tar, not from a directory: %w", errdefs.ErrInvalidArgument)
		}
	} else {
		err = a.readOCI(platform)
	}
	if err != nil {
		d.close()
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	return a, nil
}

func (a *Archive) describe() string {
	if a.Format == "" {
		return "archive"
	}
	return string(a.Format)
}

// Close releases what the archive holds open. Spooled files stay: their
// directory is the caller's.
func (a *Archive) Close() error { return a.src.close() }

// WriteBlob makes dst, a new file on the spool's filesystem, hold the
// blob's content, checked against its digest and size; on a mismatch dst
// is removed.
func (a *Archive) WriteBlob(b Blob, dst string) error {
	got, size, err := a.src.put(b.name, dst)
	if err != nil {
		return fmt.Errorf("blob %s: %w", b.Digest, err)
	}
	if got != b.Digest || size != b.Size {
		_ = os.Remove(dst)
		return fmt.Errorf("blob %s (%s): digest mismatch: got %s (%d bytes), want %s (%d bytes): %w",
			b.Digest, b.name, got, size, b.Digest, b.Size, errdefs.ErrDataLoss)
	}
	return nil
}

// cleanName makes a name from the archive (a tar entry's, a link's target,
// a path in manifest.json) relative to the archive's root, refusing one
// that is absolute or leads out of the archive. The root itself is "".
func cleanName(name string) (string, error) {
	if path.IsAbs(name) {
		return "", fmt.Errorf("%q is an absolute path: %w", name, errdefs.ErrInvalidArgument)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q leads outside the archive: %w", name, errdefs.ErrInvalidArgument)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// platformString is how errors write a platform: os/arch[/variant].
func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// matches is the platform choice of pulls (go-containerregistry's
// remote.Descriptor.Image for an index): OS and architecture equal,
// variant and OS version equal when wanted, wanted features present.
func matches(given, want v1.Platform) bool {
	return given.OS == want.OS && given.Architecture == want.Architecture && given.Satisfies(want)
}
