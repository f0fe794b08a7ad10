package archive

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
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

// maxDocument bounds each JSON document read into memory: manifest.json,
// index.json, manifests and image configs. A real one is a few kB.
const maxDocument = 8 << 20

// maxDocuments bounds the documents of one archive together, each counted
// once however often it is named: a docker save of a thousand images
// holds a few MB of them. Without it a small gzip archive listing one
// large config many times under different names takes gigabytes.
const maxDocuments = 64 << 20

// maxImages bounds the images an archive lists (manifest.json entries,
// index.json manifests), before any is read.
const maxImages = 1024

// Limits bound what reading an archive may take.
type Limits struct {
	// Bytes bounds the archive's content written to files: the files of a
	// tar as they are spooled, a layout's blobs as WriteBlob copies them.
	// Without it a gzip bomb fills the disk.
	Bytes int64
	// BytesWhy says, in errors, where Bytes comes from.
	BytesWhy string
	// Layers bounds one image's layers (0: none).
	Layers int
}

// Archive is an opened archive: its images for the platform asked for.
type Archive struct {
	Format Format
	// Images are the archive's images for the platform, each once: two
	// entries of one manifest (under one index digest) are one image,
	// with the names of both.
	Images []Image
	// Skipped names the images left out because they are for another
	// platform, with theirs.
	Skipped []string
	src     source
	lim     Limits
	// docs caches the documents read, by name, so that one named by many
	// images is read and held once; docLeft is what maxDocuments leaves.
	docs    map[string][]byte
	docLeft int64
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
	// RefNames are index.json's org.opencontainers.image.ref.name of the
	// entries without io.containerd.image.name: each a full reference, or
	// only a tag (skopeo's and oci layouts' habit).
	RefNames []string
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
	// read returns a regular file's content, refusing one over limit
	// bytes (why says what the limit is).
	read(name string, limit int64, why string) ([]byte, error)
	// put makes dst, a new file, hold a regular file's content, of size
	// bytes if it is what it should be, and returns its sha256 digest and
	// size. It reads no more than size+1 bytes.
	put(ctx context.Context, name, dst string, size int64) (digest string, n int64, err error)
	close() error
}

func newArchive(src source, lim Limits) *Archive {
	return &Archive{src: src, lim: lim, docs: map[string][]byte{}, docLeft: maxDocuments}
}

// ReadTar reads a docker-archive or OCI archive, plain or gzip-compressed,
// from r to its end, spooling its files into spoolDir (an existing, empty
// directory the caller removes), and returns its images for platform. It
// stops when ctx is done, leaving in spoolDir only complete files.
func ReadTar(ctx context.Context, r io.Reader, spoolDir string, platform v1.Platform, lim Limits) (*Archive, error) {
	sp, err := readTar(ctx, r, spoolDir, newBudget(lim))
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	a := newArchive(sp, lim)
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
func OpenLayout(dir string, platform v1.Platform, lim Limits) (*Archive, error) {
	d, err := openDir(dir, newBudget(lim))
	if err != nil {
		return nil, err
	}
	a := newArchive(d, lim)
	a.Format = OCILayout
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
// blob's content, checked against its digest and size; on a mismatch, or
// when ctx is done, dst is removed.
func (a *Archive) WriteBlob(ctx context.Context, b Blob, dst string) error {
	got, size, err := a.src.put(ctx, b.name, dst, b.Size)
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

// readDoc reads a JSON document into memory, once however often it is
// named, within maxDocument and, for the archive's documents together,
// maxDocuments.
func (a *Archive) readDoc(name string) ([]byte, error) {
	key := name
	if c, err := cleanName(name); err == nil {
		key = c // "./c.json" and "c.json" are one document
	}
	if data, ok := a.docs[key]; ok {
		return data, nil
	}
	limit, why := int64(maxDocument), "the most a document may have"
	if a.docLeft < limit {
		limit, why = a.docLeft, fmt.Sprintf("what is left of the %d bytes the archive's documents may have together", maxDocuments)
	}
	data, err := a.src.read(name, limit, why)
	if err != nil {
		return nil, err
	}
	a.docLeft -= int64(len(data))
	a.docs[key] = data
	return data, nil
}

// configPlatform returns the platform an image config names (nil when
// none).
func (a *Archive) configPlatform(cfg []byte) (*v1.Platform, error) {
	cf, err := v1.ParseConfigFile(bytes.NewReader(cfg))
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	return cf.Platform(), nil
}

// mergeImage adds the names of img to the image already found with the
// same manifest and resolved digest, and says whether there was one.
func (a *Archive) mergeImage(img Image) bool {
	for i := range a.Images {
		have := &a.Images[i]
		if have.ManifestDigest == img.ManifestDigest && have.Resolved == img.Resolved {
			for _, n := range img.Names {
				if !slices.Contains(have.Names, n) {
					have.Names = append(have.Names, n)
				}
			}
			for _, n := range img.RefNames {
				if !slices.Contains(have.RefNames, n) {
					have.RefNames = append(have.RefNames, n)
				}
			}
			return true
		}
	}
	return false
}

// cleanName makes a name from the archive (a tar entry's, a link's target,
// a path in manifest.json) relative to the archive's root, refusing one
// that is absolute or leads out of the archive. The root itself is "".
func cleanName(name string) (string, error) {
	if path.IsAbs(name) {
		return "", fmt.Errorf("%s is an absolute path: %w", shortName(name), errdefs.ErrInvalidArgument)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%s leads outside the archive: %w", shortName(name), errdefs.ErrInvalidArgument)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// checkImageCount refuses a list of images (manifest.json's entries,
// index.json's manifests) that is empty or longer than maxImages.
func checkImageCount(list string, n int) error {
	if n == 0 {
		return fmt.Errorf("%s lists no image: %w", list, errdefs.ErrInvalidArgument)
	}
	if n > maxImages {
		return fmt.Errorf("%s lists %d images, more than the %d an archive may hold: %w", list, n, maxImages, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkLayerCount refuses an image of more layers than Limits.Layers.
func (a *Archive) checkLayerCount(n int) error {
	if a.lim.Layers > 0 && n > a.lim.Layers {
		return fmt.Errorf("%d layers, more than the %d an image may have: %w", n, a.lim.Layers, errdefs.ErrInvalidArgument)
	}
	return nil
}

// platformString is how errors and Skipped write a platform:
// os/arch[/variant]. The strings are the archive's: one with anything but
// letters, digits and . _ + - is quoted, escapes and all, so that a
// hostile one cannot move the cursor or rewrite the terminal it is
// printed on, and one too long to read is cut.
func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown platform"
	}
	parts := []string{p.OS, p.Architecture}
	if p.Variant != "" {
		parts = append(parts, p.Variant)
	}
	for i, s := range parts {
		if len(s) > maxShown || strings.IndexFunc(s, notPlain) >= 0 || s == "" {
			parts[i] = cut(s, strconv.QuoteToASCII)
		}
	}
	return strings.Join(parts, "/")
}

func notPlain(r rune) bool {
	return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._+-", r))
}

// shortName is a name from the archive as errors write it: quoted, and
// cut when it is too long to be read.
func shortName(s string) string { return cut(s, strconv.Quote) }

// maxShown bounds how much of one of the archive's strings an error or
// Skipped shows.
const maxShown = 256

// cut quotes s, only its first maxShown bytes and its length when longer.
func cut(s string, quote func(string) string) string {
	if len(s) > maxShown {
		return quote(s[:maxShown]) + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return quote(s)
}

// matches is the platform choice of pulls (go-containerregistry's
// remote.Descriptor.Image for an index): OS and architecture equal,
// variant and OS version equal when wanted, wanted features present.
func matches(given, want v1.Platform) bool {
	return given.OS == want.OS && given.Architecture == want.Architecture && given.Satisfies(want)
}
