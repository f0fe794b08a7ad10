package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/runtime/image/archive"
)

// maxCommitTries bounds the commits an import retries when a layer it
// meant to reuse was collected meanwhile.
const maxCommitTries = 3

// Importer adds the images of archives (docker save's, OCI layouts and
// archives) to the image store in a directory, beside a daemon that
// serves it or with none (while a node image is built). It never deletes
// content: only the daemon knows what its containers and pulls use (see
// shared.go).
type Importer struct {
	s *Store
}

// OpenImporter opens the image store in dir (creating it if needed) for
// imports. lim bounds each layer as for pulls; an index resolves to
// platform.
func OpenImporter(dir string, lim config.Image, platform v1.Platform) (*Importer, error) {
	s, err := newStore(dir, lim, platform)
	if err != nil {
		return nil, err
	}
	s.importer = true
	return &Importer{s: s}, nil
}

// Imported is what an import stored.
type Imported struct {
	Images []Image
	// Skipped names the archive's images for other platforms, left out.
	Skipped []string
}

// ImportTar imports every image (for the store's platform) of the
// docker-archive or OCI archive, plain or gzip-compressed, that r holds.
// On error nothing is stored and the store is as it was.
func (im *Importer) ImportTar(ctx context.Context, r io.Reader, opts ImportOptions) (Imported, error) {
	return im.s.importArchive(ctx, opts, func(spool string, lim archive.Limits) (*archive.Archive, error) {
		return archive.ReadTar(ctx, r, spool, im.s.platform, lim)
	})
}

// ImportLayout imports the images of the OCI image layout in dir, as
// ImportTar does.
func (im *Importer) ImportLayout(ctx context.Context, dir string, opts ImportOptions) (Imported, error) {
	return im.s.importArchive(ctx, opts, func(_ string, lim archive.Limits) (*archive.Archive, error) {
		return archive.OpenLayout(dir, im.s.platform, lim)
	})
}

// importReserve is the space of the store's filesystem that an archive's
// files may not take: a twentieth of it, at most 1 GiB.
const importReserve = 1 << 30

// importLimits bounds what reading an archive may take. Its files, as
// spooled from a tar or copied from a layout, may take the free space of
// the store's filesystem less a reserve, so that a gzip bomb or a hostile
// layout ends with an error, not with a disk so full that the daemon and
// the kubelet cannot write; the layers unpacked next are bounded each by
// MaxLayerBytes, as for pulls. An image has at most maxLayers layers.
func (s *Store) importLimits() (archive.Limits, error) {
	lim := archive.Limits{Layers: maxLayers}
	if s.importBytes > 0 {
		lim.Bytes, lim.BytesWhy = s.importBytes, "a test's limit"
		return lim, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.importDir(), &st); err != nil {
		return lim, fmt.Errorf("statfs %s: %w", s.importDir(), err)
	}
	free, size := int64(st.Bavail)*st.Bsize, int64(st.Blocks)*st.Bsize
	reserve := min(size/20, importReserve)
	lim.Bytes = max(free-reserve, 0)
	lim.BytesWhy = fmt.Sprintf("the %d bytes free on the filesystem of %s, less a reserve of %d", free, s.dir, reserve)
	return lim, nil
}

// importing is one image of an archive on its way into the store.
type importing struct {
	*pulled
	tags, digests []string
}

// importArchive stages the archive's images in a private directory,
// checks every blob against its digest and every layer against its diff
// ID, unpacks the layers the store lacks, and commits.
func (s *Store) importArchive(ctx context.Context, opts ImportOptions, open func(spool string, lim archive.Limits) (*archive.Archive, error)) (Imported, error) {
	st, err := s.newStaging()
	if err != nil {
		return Imported{}, fmt.Errorf("import: %w", err)
	}
	defer st.remove()
	lim, err := s.importLimits()
	if err != nil {
		return Imported{}, fmt.Errorf("import: %w", err)
	}
	a, err := open(st.spool(), lim)
	if err != nil {
		return Imported{}, fmt.Errorf("import: %w", noSpace(err))
	}
	defer a.Close()
	out, err := s.importImages(ctx, st, a, opts)
	if err != nil {
		return Imported{}, fmt.Errorf("import %s: %w", a.Format, noSpace(err))
	}
	return Imported{Images: out, Skipped: a.Skipped}, nil
}

func (s *Store) importImages(ctx context.Context, st *staging, a *archive.Archive, opts ImportOptions) ([]Image, error) {
	imgs, err := s.stageImages(ctx, st, a, opts)
	if err != nil {
		return nil, err
	}
	for try := 1; ; try++ {
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		out, missing, err := s.commitImport(st, imgs)
		if err != nil || len(missing) == 0 {
			return out, err
		}
		if try == maxCommitTries {
			return nil, fmt.Errorf("layers collected while being imported, %d times: %w", try, errdefs.ErrAborted)
		}
		// Layers the store had when staging began, since collected.
		if err := s.stageLayers(ctx, st, missing); err != nil {
			return nil, err
		}
		if err := s.syncfs(); err != nil {
			return nil, err
		}
	}
}

// stageImages names the archive's images, writes their blobs into the
// staging dir (each checked against its digest and size) and readies
// their layers.
func (s *Store) stageImages(ctx context.Context, st *staging, a *archive.Archive, opts ImportOptions) ([]*importing, error) {
	tags, digests, err := importNames(a.Images, opts)
	if err != nil {
		return nil, err
	}
	var imgs []*importing
	for i, ai := range a.Images {
		p, err := checkImage(ai.Manifest, ai.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ai.Where, err)
		}
		if err := st.writeBlob(p.manifestDigest, p.rawManifest); err != nil {
			return nil, err
		}
		if err := st.writeBlob("sha256:"+sha256Hex(p.rawConfig), p.rawConfig); err != nil {
			return nil, err
		}
		for j, b := range ai.Layers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if dst := st.blobPath(b.Digest); !exists(dst) {
				if err := a.WriteBlob(ctx, b, dst); err != nil {
					return nil, fmt.Errorf("%s: layer %d: %w", ai.Where, j, err)
				}
			}
		}
		if err := s.stageLayers(ctx, st, p.layers); err != nil {
			return nil, fmt.Errorf("%s: %w", ai.Where, err)
		}
		imgs = append(imgs, &importing{pulled: p, tags: tags[i], digests: digests[i]})
	}
	// Durable before the index refers to any of it; the renames into the
	// store are made durable at commit.
	return imgs, s.syncfs()
}

// stageLayers unpacks into the staging dir the layers the store does not
// have, and checks the diff IDs of those it has: the blob stored with the
// image must be the layer its config names all the same. Each blob is
// checked once, by whichever of the two comes first.
func (s *Store) stageLayers(ctx context.Context, st *staging, layers []Layer) error {
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := l.Digest + " " + l.DiffID
		blob := st.blobPath(l.Digest)
		switch {
		case st.layers[l.ChainID] == "" && !exists(s.layerPath(l.ChainID)):
			dir, _, err := s.unpackTo(ctx, blob, l, st.dir)
			if err != nil {
				return err
			}
			st.layers[l.ChainID] = dir
		case !st.checked[key]:
			if err := readLayer(blob, l, nil); err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
		}
		st.checked[key] = true
	}
	return nil
}

// commitImport moves the staged content the images need into the store
// and records the images, all under the index lock, so that a collection
// finds the content either absent or referenced. It returns the layers
// the store no longer has and that were not staged (collected since
// staging began), and then changes nothing.
func (s *Store) commitImport(st *staging, imgs []*importing) ([]Image, []Layer, error) {
	unlock, err := s.lockIndex()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	var missing []Layer
	for _, img := range imgs {
		if s.idx.Images["sha256:"+sha256Hex(img.rawConfig)] != nil {
			continue // stored already: only names are added
		}
		for _, l := range img.layers {
			if st.layers[l.ChainID] == "" && !exists(s.layerPath(l.ChainID)) {
				missing = append(missing, l)
			}
		}
	}
	if len(missing) > 0 {
		return nil, missing, nil
	}
	prev := make(map[string]*Image, len(s.idx.Images))
	for k, v := range s.idx.Images {
		c := v.clone()
		prev[k] = &c
	}
	out := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		stored, err := s.recordImportLocked(st, img)
		if err != nil {
			s.idx.Images = prev
			return nil, nil, err
		}
		out = append(out, stored)
	}
	if err := s.saveLocked(); err != nil {
		// What was moved in stays unreferenced until the daemon's next
		// collection (see shared.go).
		s.idx.Images = prev
		return nil, nil, fmt.Errorf("commit: %w", err)
	}
	return out, nil, nil
}

// recordImportLocked moves an image's content in (unless the store has
// the image: its content then stays as it is) and gives it its names; a
// tag moves from the image that had it, as in a pull.
// Preconditions: s.mu and the file lock (lockIndex) are held.
func (s *Store) recordImportLocked(st *staging, p *importing) (Image, error) {
	id := "sha256:" + sha256Hex(p.rawConfig)
	img := s.idx.Images[id]
	if img == nil {
		if err := s.moveInLocked(st, p.pulled); err != nil {
			return Image{}, err
		}
		img = &Image{ID: id, ManifestDigest: p.manifestDigest, Layers: p.layers, Size: p.size,
			User: p.config.Config.User, PulledAt: time.Now().UTC()}
		s.idx.Images[id] = img
	}
	for _, tag := range p.tags {
		for _, other := range s.idx.Images {
			other.RepoTags = slices.DeleteFunc(other.RepoTags, func(t string) bool { return t == tag })
		}
		img.RepoTags = append(img.RepoTags, tag)
	}
	for _, d := range p.digests {
		img.RepoDigests = appendNew(img.RepoDigests, d)
	}
	return img.clone(), nil
}

// moveInLocked renames an image's staged blobs and layers into the store
// where it lacks them, and makes the renames durable.
// Preconditions: s.mu and the file lock (lockIndex) are held.
func (s *Store) moveInLocked(st *staging, p *pulled) error {
	blobs := []string{p.manifestDigest, "sha256:" + sha256Hex(p.rawConfig)}
	for _, l := range p.layers {
		blobs = append(blobs, l.Digest)
	}
	for _, b := range blobs {
		if exists(s.blobPath(b)) {
			continue
		}
		if err := os.Rename(st.blobPath(b), s.blobPath(b)); err != nil {
			return fmt.Errorf("commit blob %s: %w", b, err)
		}
		s.recordBlob(strings.TrimPrefix(b, "sha256:"))
	}
	for _, l := range p.layers {
		dst := s.layerPath(l.ChainID)
		if exists(dst) {
			continue
		}
		if s.beforeMove != nil {
			s.beforeMove(l)
		}
		// The daemon's pulls rename their layers in without the file lock
		// (unpack): one may land this layer after the check above, and
		// the rename of a directory onto a non-empty one fails. Its copy
		// is as good as ours, as unpack takes ours when we land first.
		if err := os.Rename(st.layers[l.ChainID], dst); err != nil && !exists(dst) {
			return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
		} else if err == nil {
			delete(st.layers, l.ChainID)
		}
		s.recordLayer(strings.TrimPrefix(l.ChainID, "sha256:"))
	}
	for _, d := range []string{filepath.Join(s.dir, "blobs", "sha256"), filepath.Join(s.dir, "layers", "sha256")} {
		if err := statefile.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// staging is an import's private work directory, import/<random>:
//
//	lock        held (flock) while the import runs
//	spool/      the archive's files, when read from a tar
//	blobs/<hex> verified blobs
//	layer-*/    unpacked layers (diff/, usage.json)
type staging struct {
	dir  string
	lock *os.File
	// layers maps chain IDs to the layer dirs unpacked here.
	layers map[string]string
	// checked records the layer blobs ("<digest> <diff ID>") whose diff
	// ID was checked, by unpacking them or by reading them through.
	checked map[string]bool
}

// newStaging makes and locks a work directory under the store's lock, so
// that clearStaleImports never sees one unlocked, and clears the work
// directories of imports whose process is gone.
func (s *Store) newStaging() (_ *staging, retErr error) {
	f, err := s.flock()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := s.clearStaleImports(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.importDir(), "")
	if err != nil {
		return nil, fmt.Errorf("make work dir: %w", err)
	}
	st := &staging{dir: dir, layers: map[string]string{}, checked: map[string]bool{}}
	defer func() {
		if retErr != nil {
			st.remove()
		}
	}()
	if st.lock, err = lockFile(filepath.Join(dir, "lock")); err != nil {
		return nil, fmt.Errorf("make work dir: %w", err)
	}
	for _, d := range []string{st.spool(), filepath.Join(dir, "blobs")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("make work dir: %w", err)
		}
	}
	return st, nil
}

func (st *staging) spool() string { return filepath.Join(st.dir, "spool") }

func (st *staging) blobPath(dgst string) string {
	return filepath.Join(st.dir, "blobs", strings.TrimPrefix(dgst, "sha256:"))
}

// writeBlob stages a document blob (a manifest, a config).
func (st *staging) writeBlob(dgst string, data []byte) error {
	if exists(st.blobPath(dgst)) {
		return nil
	}
	if err := os.WriteFile(st.blobPath(dgst), data, 0o600); err != nil {
		return fmt.Errorf("stage blob %s: %w", dgst, err)
	}
	return nil
}

// remove deletes the work directory, then releases its lock: a cleaner
// never finds it unlocked while it is there.
func (st *staging) remove() {
	_ = os.RemoveAll(st.dir)
	if st.lock != nil {
		st.lock.Close()
	}
}
