package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// maxConcurrentLayers bounds the layers fetched and unpacked at once per pull.
const maxConcurrentLayers = 3

// NodePlatform is the platform a multi-arch index resolves to on this node.
func NodePlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: goruntime.GOARCH}
}

// Pull fetches ref into the store and returns the stored image. Concurrent
// pulls of one reference with the same credentials share one download.
func (s *Store) Pull(ctx context.Context, ref string, auth Auth) (Image, error) {
	parsed, err := ParseReference(ref)
	if err != nil {
		return Image{}, err
	}
	key := parsed.String() + "\x00" + auth.fingerprint()
	img, err := s.flights.do(ctx, key, func(ctx context.Context) (Image, error) {
		start := time.Now()
		img, err := s.pull(ctx, parsed, auth)
		if s.obs != nil {
			s.obs.ObservePull(time.Since(start), err)
		}
		return img, err
	})
	if err != nil {
		return Image{}, fmt.Errorf("pull image %s: %w", parsed, noSpace(err))
	}
	return img, nil
}

func (a Auth) fingerprint() string {
	h := sha256.Sum256([]byte(a.Username + "\x00" + a.Password + "\x00" + a.Auth + "\x00" +
		a.ServerAddress + "\x00" + a.IdentityToken + "\x00" + a.RegistryToken))
	return hex.EncodeToString(h[:])
}

// pulled is what a pull learned from the registry, ready to commit.
type pulled struct {
	ref            Reference
	resolved       string // digest the reference resolved to (an index's for multi-arch tags)
	manifestDigest string
	rawManifest    []byte
	rawConfig      []byte
	config         *v1.ConfigFile
	layers         []Layer
	size           int64
}

func (s *Store) pull(ctx context.Context, ref Reference, auth Auth) (_ Image, retErr error) {
	desc, ep, err := s.resolver.resolve(ctx, ref, auth)
	if err != nil {
		return Image{}, err
	}
	p, err := readManifest(desc, ref, ep)
	if err != nil {
		return Image{}, err
	}
	s.observeBytes(int64(len(p.rawManifest) + len(p.rawConfig)))
	keys := []string{p.manifestDigest, "sha256:" + sha256Hex(p.rawConfig)}
	for _, l := range p.layers {
		keys = append(keys, l.Digest, l.ChainID)
	}
	s.hold(keys)
	defer func() {
		s.release(keys)
		// What a failed pull stored no image uses: left until the next
		// start, it would keep a full disk full (containerd's content GC
		// runs when the pull's lease goes, the same moment). Content
		// that a container or another pull holds stays.
		if retErr != nil {
			s.collect()
		}
	}()

	if err := s.writeBlob(p.manifestDigest, p.rawManifest); err != nil {
		return Image{}, err
	}
	if err := s.writeBlob(keys[1], p.rawConfig); err != nil {
		return Image{}, err
	}
	fetcher, err := s.resolver.blobFetcher(ctx, ref, ep, auth)
	if err != nil {
		return Image{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxConcurrentLayers)
	for _, l := range p.layers {
		g.Go(func() error { return s.ensureLayer(gctx, fetcher, l) })
	}
	if err := g.Wait(); err != nil {
		return Image{}, err
	}
	// One syncfs makes every blob and unpacked file durable before the index
	// refers to them; cheaper than an fsync per file.
	if err := s.syncfs(); err != nil {
		return Image{}, err
	}
	return s.commit(p)
}

// readManifest resolves an index to this node's platform and reads the
// manifest and config, checking them against their digests.
func readManifest(desc *remote.Descriptor, ref Reference, ep endpoint) (*pulled, error) {
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("%w (platform %s)", classify(err, ep.who(), false), NodePlatform())
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return nil, classify(err, ep.who(), false)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, classify(err, ep.who(), false)
	}
	p, err := checkImage(rawManifest, rawConfig)
	if err != nil {
		return nil, err
	}
	p.ref, p.resolved = ref, desc.Digest.String()
	return p, nil
}

// maxLayers bounds an image's layers, in pulls and imports alike. Each
// layer is unpacked and becomes an overlay lower dir, and one layer listed
// N times is unpacked N times (its chain IDs differ): without a bound a
// small manifest costs any number of unpacks. Docker's overlay2 driver
// stacks at most 128 layers (its maxDepth), overlayfs itself 500.
const maxLayers = 128

// checkImage parses a manifest and its config, checks the config against
// the manifest's digest and the layers against the config's diff IDs (in
// number: their content is checked as they are unpacked), and derives
// the layers' chain IDs. Pulls and imports store what it returns.
func checkImage(rawManifest, rawConfig []byte) (*pulled, error) {
	p := &pulled{rawManifest: rawManifest, rawConfig: rawConfig}
	p.manifestDigest = "sha256:" + sha256Hex(p.rawManifest)
	manifest, err := v1.ParseManifest(bytes.NewReader(p.rawManifest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %v: %w", p.manifestDigest, err, errdefs.ErrInvalidArgument)
	}
	if got := "sha256:" + sha256Hex(p.rawConfig); got != manifest.Config.Digest.String() {
		return nil, fmt.Errorf("config blob digest mismatch: got %s, want %s: %w", got, manifest.Config.Digest, errdefs.ErrDataLoss)
	}
	if p.config, err = v1.ParseConfigFile(bytes.NewReader(p.rawConfig)); err != nil {
		return nil, fmt.Errorf("config %s: %v: %w", manifest.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if len(manifest.Layers) > maxLayers {
		return nil, fmt.Errorf("manifest %s has %d layers, more than the %d an image may have: %w",
			p.manifestDigest, len(manifest.Layers), maxLayers, errdefs.ErrInvalidArgument)
	}
	diffIDs := p.config.RootFS.DiffIDs
	if len(diffIDs) != len(manifest.Layers) {
		return nil, fmt.Errorf("manifest %s has %d layers but its config %d diff IDs: %w",
			p.manifestDigest, len(manifest.Layers), len(diffIDs), errdefs.ErrInvalidArgument)
	}
	p.size = int64(len(p.rawManifest)) + manifest.Config.Size
	chain := ""
	for i, l := range manifest.Layers {
		if len(l.URLs) > 0 {
			return nil, fmt.Errorf("layer %s is a foreign layer (urls %s): %w", l.Digest, strings.Join(l.URLs, ", "), errdefs.ErrNotImplemented)
		}
		chain = chainID(chain, diffIDs[i].String())
		p.layers = append(p.layers, Layer{
			Digest: l.Digest.String(), DiffID: diffIDs[i].String(), ChainID: chain,
			Size: l.Size, MediaType: string(l.MediaType),
		})
		p.size += l.Size
	}
	return p, nil
}

// chainID follows the OCI image spec: the first layer's chain ID is its diff
// ID; each next one is sha256(parent chain ID + " " + diff ID).
func chainID(parent, diffID string) string {
	if parent == "" {
		return diffID
	}
	return "sha256:" + sha256Hex([]byte(parent+" "+diffID))
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (s *Store) hold(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.active[k]++
	}
}

func (s *Store) release(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if s.active[k]--; s.active[k] <= 0 {
			delete(s.active, k)
		}
	}
}

func (s *Store) syncfs() error {
	fd, err := unix.Open(s.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", s.dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", s.dir, err)
	}
	return nil
}

// commit records the pulled image in the index. A tag moves to the new image;
// the image it left keeps its other names (or none: a dangling image the
// kubelet's image GC will find).
func (s *Store) commit(p *pulled) (Image, error) {
	id := "sha256:" + sha256Hex(p.rawConfig)
	unlock, err := s.lockIndex()
	if err != nil {
		return Image{}, fmt.Errorf("commit image %s: %w", id, err)
	}
	prev := make(map[string]*Image, len(s.idx.Images))
	for k, v := range s.idx.Images {
		c := v.clone()
		prev[k] = &c
	}
	img := s.idx.Images[id]
	replaced := img != nil && img.ManifestDigest != p.manifestDigest
	if img == nil {
		img = &Image{ID: id}
		s.idx.Images[id] = img
	}
	img.ManifestDigest, img.Layers, img.Size = p.manifestDigest, p.layers, p.size
	img.User, img.PulledAt = p.config.Config.User, time.Now().UTC()
	if tag := p.ref.TagRef(); tag != "" && p.ref.Digest == "" {
		for _, other := range s.idx.Images {
			other.RepoTags = slices.DeleteFunc(other.RepoTags, func(t string) bool { return t == tag })
		}
		img.RepoTags = append(img.RepoTags, tag)
	}
	if d := p.ref.Repository() + "@" + p.resolved; !slices.Contains(img.RepoDigests, d) {
		img.RepoDigests = append(img.RepoDigests, d)
	}
	if err := s.saveLocked(); err != nil {
		s.idx.Images = prev
		unlock()
		return Image{}, fmt.Errorf("commit image %s: %w", id, err)
	}
	out := img.clone()
	var trash []string
	if replaced {
		trash = s.collectLocked()
	}
	unlock()
	removeTrash(trash)
	return out, nil
}

// writeBlob commits small in-memory content (manifests, configs) to the blob
// store after checking its digest.
func (s *Store) writeBlob(dgst string, data []byte) error {
	if got := "sha256:" + sha256Hex(data); got != dgst {
		return fmt.Errorf("blob digest mismatch: got %s, want %s: %w", got, dgst, errdefs.ErrDataLoss)
	}
	if exists(s.blobPath(dgst)) {
		return nil
	}
	f, err := os.CreateTemp(s.ingestDir(), "blob-")
	if err != nil {
		return fmt.Errorf("store blob %s: %w", dgst, err)
	}
	_, err = f.Write(data)
	return s.commitBlob(f, dgst, err)
}
