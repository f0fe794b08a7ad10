package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/runtime/image/layer"
)

// indexVersion is the version of images.json this code reads and writes.
const indexVersion = 1

// Image is one stored image, keyed by its ID (the config digest).
type Image struct {
	ID             string    `json:"id"`
	RepoTags       []string  `json:"repoTags,omitempty"`
	RepoDigests    []string  `json:"repoDigests,omitempty"`
	ManifestDigest string    `json:"manifestDigest"`
	Layers         []Layer   `json:"layers"`
	Size           int64     `json:"size"` // manifest, config and compressed layers, as in the registry
	User           string    `json:"user,omitempty"`
	PulledAt       time.Time `json:"pulledAt"`
}

// Layer is one layer of an image.
type Layer struct {
	Digest    string `json:"digest"` // of the blob as stored (compressed)
	DiffID    string `json:"diffID"` // of the uncompressed tar
	ChainID   string `json:"chainID"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
}

// index is the persisted document images.json.
type index struct {
	Version int               `json:"version"`
	Images  map[string]*Image `json:"images"`
}

// Usage is the space the image store takes on its filesystem.
type Usage struct {
	Mountpoint string
	Bytes      int64
	Inodes     int64
}

// Store is the content-addressed image store under <root>/images:
//
//	blobs/sha256/<hex>          verified blobs: manifests, configs, compressed layers
//	layers/sha256/<chain hex>/  diff/ (an overlay lower dir) and usage.json
//	ingest/, tmp/, trash/       work in progress, cleared at Open
//	images.json                 the index, replaced atomically, written last
type Store struct {
	dir      string
	platform v1.Platform // what an index resolves to, in pulls and imports
	resolver *resolver
	flights  flights
	pins     Pins
	limits   layer.Limits // what one layer may unpack to
	obs      Observer     // nil: nobody; set before the first pull

	// importer is set for a store opened by OpenImporter: it never
	// collects, since it cannot see the daemon's pins and pulls.
	importer bool
	// beforeCommit, when set (by tests), runs before each commit of an
	// import, with no lock held.
	beforeCommit func()
	// beforeMove, when set (by tests), runs before an import renames a
	// staged layer into the store, with the locks held.
	beforeMove func(Layer)
	// importBytes, when set (by tests), bounds the files an import writes
	// from an archive instead of the free space (importLimits).
	importBytes int64

	// mu guards idx, idxID, active, blobUsage, layerUsage and deferred.
	// collect calls pins with it held: Pins implementations must not call
	// the store. Changes to idx and deletions of content also hold the
	// file lock (lockIndex), taken before mu.
	mu  sync.Mutex
	idx index
	// idxID is the version of images.json that idx reflects.
	idxID fileID
	// active counts running pulls and containers being created that need
	// a blob digest or chain ID, so garbage collection leaves them alone.
	active     map[string]int
	blobUsage  map[string]int64
	layerUsage map[string]layerUsage
	// deferred is set when a collection kept content only for a pin or a
	// hold: Collect has work once those go.
	deferred bool
}

// Pins tells the store which layers containers use, so that removing an
// image does not pull the floor from under its containers: the name goes
// at once, the layers with the last container that uses them (what
// containerd does, and what the kubelet's image GC expects). The container
// records are the source, so pins survive a restart and the store keeps
// no second copy that could drift from them.
type Pins interface {
	// LayersInUse returns the overlay lower dirs, as HoldLayers gave them,
	// that existing containers (created, running or exited) use. It is
	// called with the store's lock held and must not call the store.
	LayersInUse() []string
}

// Observer learns what pulls cost (the daemon's metrics). Its methods are
// called from concurrent pulls.
type Observer interface {
	// ObservePull reports one pull's work: a flight that concurrent pulls
	// of one reference share is one pull.
	ObservePull(took time.Duration, err error)
	// ObservePullBytes reports bytes downloaded from a registry: a
	// manifest and config, or a layer blob (whole or, on failure, part).
	ObservePullBytes(n int64)
}

// UseObserver has the store report its pulls to o. Call it before the
// first pull.
func (s *Store) UseObserver(o Observer) { s.obs = o }

func (s *Store) observeBytes(n int64) {
	if s.obs != nil {
		s.obs.ObservePullBytes(n)
	}
}

type layerUsage struct {
	Bytes  int64 `json:"bytes"`
	Inodes int64 `json:"inodes"`
}

// Open opens (creating it if needed) the image store in dir, clears what
// interrupted work left, drops index entries whose content is missing and
// collects content no image and no container (pins, which may be nil)
// refers to. It returns the IDs of dropped images. lim bounds each layer a
// pull unpacks (zero fields: no bound).
//
// An import (`crib image import`, OpenImporter) may run beside it: see
// shared.go for how the two share the directory.
func Open(dir string, reg config.Registry, lim config.Image, platform v1.Platform, pins Pins) (*Store, []string, error) {
	s, err := newStore(dir, lim, platform)
	if err != nil {
		return nil, nil, err
	}
	s.resolver, s.pins = newResolver(reg, platform), pins
	unlock, err := s.lockIndex()
	if err != nil {
		return nil, nil, fmt.Errorf("open image store: %w", err)
	}
	dropped, trash, err := s.recoverLocked()
	unlock()
	removeTrash(trash)
	if err != nil {
		return nil, nil, fmt.Errorf("open image store: %w", err)
	}
	return s, dropped, nil
}

// newStore makes the store's directories and reads nothing yet.
func newStore(dir string, lim config.Image, platform v1.Platform) (*Store, error) {
	s := &Store{
		dir:        dir,
		platform:   platform,
		idx:        index{Version: indexVersion, Images: map[string]*Image{}},
		limits:     layer.Limits{Bytes: lim.MaxLayerBytes, Entries: lim.MaxLayerEntries},
		active:     map[string]int{},
		blobUsage:  map[string]int64{},
		layerUsage: map[string]layerUsage{},
	}
	for _, d := range []string{"blobs/sha256", "layers/sha256", "ingest", "tmp", "trash", "import"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	return s, nil
}

// recoverLocked clears what interrupted work left (the daemon's own work
// dirs: only one daemon opens a root; and imports whose process is gone),
// drops index entries whose content is missing, records usage and
// collects. It returns the dropped images and the layers to delete.
// Preconditions: s.mu and the file lock (lockIndex) are held.
func (s *Store) recoverLocked() (dropped, trash []string, err error) {
	for _, d := range []string{"ingest", "tmp", "trash"} {
		if err := clearDir(filepath.Join(s.dir, d)); err != nil {
			return nil, nil, err
		}
	}
	// And the index's temp file, if a process was killed writing it: under
	// the lock, no write can be running.
	if err := statefile.RemoveTemps(s.dir); err != nil {
		return nil, nil, err
	}
	if err := s.clearStaleImports(); err != nil {
		return nil, nil, err
	}
	dropped = s.dropIncomplete()
	if len(dropped) > 0 {
		if err := s.saveLocked(); err != nil {
			return nil, nil, err
		}
	}
	if err := s.scan(); err != nil {
		return nil, nil, err
	}
	return dropped, s.collectLocked(), nil
}

func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) indexPath() string { return filepath.Join(s.dir, "images.json") }

func (s *Store) blobPath(dgst string) string {
	return filepath.Join(s.dir, "blobs", "sha256", strings.TrimPrefix(dgst, "sha256:"))
}

func (s *Store) layerPath(chainID string) string {
	return filepath.Join(s.dir, "layers", "sha256", strings.TrimPrefix(chainID, "sha256:"))
}

func (s *Store) load() error {
	s.idx = index{Version: indexVersion, Images: map[string]*Image{}}
	err := statefile.ReadJSON(s.indexPath(), &s.idx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read image index: %w", err)
	}
	if s.idx.Version != indexVersion {
		return fmt.Errorf("read image index: %s version %d: %w", s.indexPath(), s.idx.Version, statefile.ErrVersion)
	}
	if s.idx.Images == nil {
		s.idx.Images = map[string]*Image{}
	}
	return nil
}

// dropIncomplete removes index entries whose blobs or layers are gone (a disk
// repaired by fsck, a hand-deleted file): better a re-pull than a broken rootfs.
func (s *Store) dropIncomplete() []string {
	var dropped []string
	for id, img := range s.idx.Images {
		ok := exists(s.blobPath(img.ID)) && exists(s.blobPath(img.ManifestDigest))
		for _, l := range img.Layers {
			ok = ok && exists(filepath.Join(s.layerPath(l.ChainID), "diff"))
		}
		if !ok {
			delete(s.idx.Images, id)
			dropped = append(dropped, id)
		}
	}
	return dropped
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// scan records the disk usage of the blobs and layers in the store that
// it has not recorded: at Open, all of them; at a collection, what an
// import moved in and then failed to reference (an importer never
// deletes: see shared.go). Unrecorded content is never collected.
// Preconditions: s.mu is held, or the store is not yet shared.
func (s *Store) scan() error {
	blobs, err := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if _, ok := s.blobUsage["sha256:"+b.Name()]; !ok {
			s.recordBlob(b.Name())
		}
	}
	layers, err := os.ReadDir(filepath.Join(s.dir, "layers", "sha256"))
	if err != nil {
		return err
	}
	for _, l := range layers {
		if _, ok := s.layerUsage["sha256:"+l.Name()]; !ok {
			s.recordLayer(l.Name())
		}
	}
	return nil
}

// List returns every image, sorted by ID.
//
// An index another process wrote since the last call is read first; if
// reading it fails, List serves the index it last read.
func (s *Store) List() []Image {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked()
	out := make([]Image, 0, len(s.idx.Images))
	for _, img := range s.idx.Images {
		out = append(out, img.clone())
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Get finds an image by ID, tag reference, digest reference or unambiguous ID
// prefix. An unknown image is an error matching errdefs.ErrNotFound.
func (s *Store) Get(ref string) (Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.lookupLocked(ref)
	if err != nil {
		return Image{}, err
	}
	return img.clone(), nil
}

// Preconditions: s.mu is held.
func (s *Store) lookupLocked(ref string) (*Image, error) {
	if err := s.refreshLocked(); err != nil {
		return nil, err
	}
	if id, ok := looksLikeID(ref); ok {
		if img := s.idx.Images[id]; img != nil {
			return img, nil
		}
		return nil, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
	}
	parsed, perr := ParseReference(ref)
	if perr == nil {
		for _, img := range s.idx.Images {
			if parsed.Digest != "" && slices.Contains(img.RepoDigests, parsed.Repository()+"@"+parsed.Digest) ||
				parsed.Digest == "" && slices.Contains(img.RepoTags, parsed.TagRef()) {
				return img, nil
			}
		}
	}
	if img, err := s.lookupPrefixLocked(ref); img != nil || err != nil {
		return img, err
	}
	if perr != nil {
		return nil, perr
	}
	return nil, fmt.Errorf("image %s: %w", ref, errdefs.ErrNotFound)
}

// lookupPrefixLocked resolves a short ID as crictl prints them.
// Preconditions: s.mu is held.
func (s *Store) lookupPrefixLocked(ref string) (*Image, error) {
	prefix := strings.TrimPrefix(ref, "sha256:")
	if len(prefix) < 4 || len(prefix) >= 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return nil, nil
	}
	var found *Image
	for id, img := range s.idx.Images {
		if strings.HasPrefix(id, "sha256:"+prefix) {
			if found != nil {
				return nil, fmt.Errorf("image ID prefix %s is ambiguous: %w", ref, errdefs.ErrInvalidArgument)
			}
			found = img
		}
	}
	return found, nil
}

// LayerDirs returns the overlay lower dirs of an image, top layer first, as
// overlayfs's lowerdir option lists them.
func (s *Store) LayerDirs(ref string) ([]string, error) {
	img, err := s.Get(ref)
	if err != nil {
		return nil, err
	}
	return s.layerDirs(&img), nil
}

func (s *Store) layerDirs(img *Image) []string {
	dirs := make([]string, 0, len(img.Layers))
	for i := len(img.Layers) - 1; i >= 0; i-- {
		dirs = append(dirs, s.lowerDir(img.Layers[i].ChainID))
	}
	return dirs
}

func (s *Store) lowerDir(chainID string) string { return filepath.Join(s.layerPath(chainID), "diff") }

// HoldLayers returns an image's lower dirs as LayerDirs does and keeps them
// from collection until release is called, which the caller must do once
// the container that uses them is in the records Pins reads: between the
// lookup and the record, a RemoveImage must not take the layers.
func (s *Store) HoldLayers(ref string) (dirs []string, release func(), err error) {
	s.mu.Lock()
	img, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	keys := make([]string, 0, len(img.Layers))
	for _, l := range img.Layers {
		keys = append(keys, l.ChainID)
		s.active[l.ChainID]++
	}
	dirs = s.layerDirs(img)
	s.mu.Unlock()
	var once sync.Once
	return dirs, func() {
		once.Do(func() {
			s.release(keys)
			s.Collect()
		})
	}, nil
}

// ConfigFile returns the OCI config of an image.
func (s *Store) ConfigFile(ref string) (*v1.ConfigFile, error) {
	img, err := s.Get(ref)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(img.ID))
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	defer f.Close()
	cfg, err := v1.ParseConfigFile(f)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.ID, err)
	}
	return cfg, nil
}

// Remove deletes an image with all its tags and digests, then the content no
// other image uses. An unknown image is an error matching errdefs.ErrNotFound.
func (s *Store) Remove(ref string) error {
	unlock, err := s.lockIndex()
	if err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	img, err := s.lookupLocked(ref)
	if err != nil {
		unlock()
		return err
	}
	delete(s.idx.Images, img.ID)
	if err := s.saveLocked(); err != nil {
		s.idx.Images[img.ID] = img
		unlock()
		return fmt.Errorf("remove image %s: %w", img.ID, err)
	}
	trash := s.collectLocked()
	unlock()
	removeTrash(trash)
	return nil
}

// Collect deletes content that was kept only for containers or holds that
// have since gone; it is cheap when there is none. The CRI layer calls it
// after removing containers.
func (s *Store) Collect() {
	s.mu.Lock()
	deferred := s.deferred
	s.mu.Unlock()
	if deferred {
		s.collect()
	}
}

// collect deletes blobs and layers that no image, no running pull or
// create and no container uses, under the index lock (lockIndex). It does
// nothing in an importer. A collection that cannot take the lock is left
// for the next Collect.
func (s *Store) collect() {
	if s.importer {
		return
	}
	unlock, err := s.lockIndex()
	if err != nil {
		s.mu.Lock()
		s.deferred = true
		s.mu.Unlock()
		return
	}
	trash := s.collectLocked()
	unlock()
	removeTrash(trash)
}

// collectLocked deletes what collect would and returns the layer dirs
// moved to trash/, for removeTrash once the locks are released. Layers are
// renamed into trash/ under the locks, so a pull never finds a
// half-deleted one; Open clears what a crash left there. Blobs are not
// pinned: a container needs only its unpacked layers. The index was read
// again under the file lock, so an image another process committed keeps
// its content.
// Preconditions: s.mu and the file lock (lockIndex) are held.
func (s *Store) collectLocked() []string {
	// What a failed import left, and a scan that fails, are for the next.
	_ = s.scan()
	used := map[string]bool{}
	for _, img := range s.idx.Images {
		used[img.ID], used[img.ManifestDigest] = true, true
		for _, l := range img.Layers {
			used[l.Digest], used[l.ChainID] = true, true
		}
	}
	pinned := map[string]bool{}
	if s.pins != nil {
		for _, d := range s.pins.LayersInUse() {
			pinned[d] = true
		}
	}
	s.deferred = false
	var trash []string
	for d := range s.blobUsage {
		switch {
		case used[d]:
		case s.active[d] > 0:
			s.deferred = true
		case os.Remove(s.blobPath(d)) == nil:
			delete(s.blobUsage, d)
		}
	}
	for c := range s.layerUsage {
		switch {
		case used[c]:
			continue
		case s.active[c] > 0 || pinned[s.lowerDir(c)]:
			s.deferred = true
			continue
		}
		dst := filepath.Join(s.dir, "trash", strings.TrimPrefix(c, "sha256:"))
		if os.Rename(s.layerPath(c), dst) == nil {
			delete(s.layerUsage, c)
			trash = append(trash, dst)
		}
	}
	return trash
}

func removeTrash(trash []string) {
	for _, t := range trash {
		_ = os.RemoveAll(t) // what stays is cleared by the next Open
	}
}

// Usage reports the bytes and inodes the store takes, from figures recorded
// when content was committed: no walk of the tree.
func (s *Store) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.refreshLocked() // as List: the figures of the index last read
	u := Usage{Mountpoint: s.dir, Inodes: 1}
	for _, b := range s.blobUsage {
		u.Bytes += b
		u.Inodes++
	}
	for _, l := range s.layerUsage {
		u.Bytes += max(l.Bytes, 0)
		u.Inodes += l.Inodes + 1 // and usage.json
	}
	var st unix.Stat_t
	if unix.Stat(s.indexPath(), &st) == nil {
		u.Bytes += st.Blocks * 512
		u.Inodes++
	}
	return u
}

func (img *Image) clone() Image {
	c := *img
	c.RepoTags = slices.Clone(img.RepoTags)
	c.RepoDigests = slices.Clone(img.RepoDigests)
	c.Layers = slices.Clone(img.Layers)
	return c
}

// RunConfig is what running a container needs from an image's config.
type RunConfig struct {
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	StopSignal           string
	Volumes              []string
}

// RunConfig returns the run settings of an image's config.
func (s *Store) RunConfig(ref string) (RunConfig, error) {
	cfg, err := s.ConfigFile(ref)
	if err != nil {
		return RunConfig{}, err
	}
	c := cfg.Config
	rc := RunConfig{Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, StopSignal: c.StopSignal}
	for v := range c.Volumes {
		rc.Volumes = append(rc.Volumes, v)
	}
	slices.Sort(rc.Volumes)
	return rc, nil
}
