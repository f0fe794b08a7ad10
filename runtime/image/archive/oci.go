package archive

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The annotations that name an image in index.json: containerd's (ctr
// export, docker save since 25) is a full reference; the OCI one is a
// full reference or, in skopeo's and many layouts, only a tag.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// maxIndexDepth bounds nested indexes (index.json → a multi-platform
// index → its manifests is depth 1).
const maxIndexDepth = 4

// defaultPlatform is what a pull assumes of an index entry that names no
// platform, as go-containerregistry's remote does.
var defaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// The media types an image is read from. Others (artifacts, foreign
// layers, encrypted layers) are refused by name.
var (
	manifestTypes = []types.MediaType{types.OCIManifestSchema1, types.DockerManifestSchema2}
	indexTypes    = []types.MediaType{types.OCIImageIndex, types.DockerManifestList}
	configTypes   = []types.MediaType{types.OCIConfigJSON, types.DockerConfigJSON}
	layerTypes    = []types.MediaType{types.OCILayer, types.OCIUncompressedLayer, types.OCILayerZStd,
		types.DockerLayer, types.DockerUncompressedLayer}
)

func isOneOf(mt types.MediaType, list []types.MediaType) bool {
	for _, m := range list {
		if mt == m {
			return true
		}
	}
	return false
}

// readOCI reads index.json: each manifest it lists is an image, each
// index a multi-platform image resolved to platform as pulls resolve one.
// A manifest whose descriptor or config names another platform is
// skipped.
func (a *Archive) readOCI(platform v1.Platform) error {
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := a.readJSON("oci-layout", &layout); err != nil {
		return err
	}
	if layout.Version != "1.0.0" {
		return fmt.Errorf("oci-layout: image layout version %q: %w", layout.Version, errdefs.ErrNotImplemented)
	}
	var idx v1.IndexManifest
	if err := a.readJSON("index.json", &idx); err != nil {
		return err
	}
	if err := checkImageCount("index.json", len(idx.Manifests)); err != nil {
		return err
	}
	// Entries that differ only in their annotations (the names) are one
	// image, read once, and one skipped entry is skipped again unread.
	read, skipped := map[string]Image{}, map[string]string{}
	for i, d := range idx.Manifests {
		where := fmt.Sprintf("index.json manifest %d (%s)", i, d.Digest)
		key := descriptorKey(d)
		if skip, ok := skipped[key]; ok {
			a.Skipped = append(a.Skipped, where+": "+skip)
			continue
		}
		img, ok := read[key]
		if !ok {
			var skip string
			var err error
			if img, skip, err = a.readTop(d, where, platform); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if skip != "" {
				skipped[key] = skip
				a.Skipped = append(a.Skipped, where+": "+skip)
				continue
			}
			read[key] = img
		}
		if n := d.Annotations[annotationContainerdName]; n != "" {
			img.Names = []string{n}
		} else if n := d.Annotations[annotationRefName]; n != "" {
			img.RefNames = []string{n}
		}
		if !a.mergeImage(img) {
			a.Images = append(a.Images, img)
		}
	}
	return a.noImageLeft(platform)
}

// descriptorKey is what tells index.json entries apart, their
// annotations left out.
func descriptorKey(d v1.Descriptor) string {
	d.Annotations = nil
	b, _ := json.Marshal(d) // a decoded descriptor encodes
	return string(b)
}

// readTop reads the image of one index.json entry, or says which platform
// it is for when not platform.
func (a *Archive) readTop(d v1.Descriptor, where string, platform v1.Platform) (img Image, skip string, err error) {
	mdesc := d
	switch {
	case isOneOf(d.MediaType, manifestTypes):
		if d.Platform != nil && !matches(*d.Platform, platform) {
			return Image{}, platformString(d.Platform), nil
		}
	case isOneOf(d.MediaType, indexTypes):
		if mdesc, err = a.pickChild(d, platform, 1); err != nil {
			return Image{}, "", err
		}
	default:
		return Image{}, "", fmt.Errorf("unsupported media type %q: %w", d.MediaType, errdefs.ErrNotImplemented)
	}
	img, cfgPlatform, err := a.readImage(mdesc)
	if err != nil {
		return Image{}, "", err
	}
	if cfgPlatform != nil && !matches(*cfgPlatform, platform) {
		return Image{}, platformString(cfgPlatform), nil
	}
	img.Where, img.Resolved = where, d.Digest.String()
	return img, "", nil
}

// pickChild resolves an index to the manifest for platform: the first
// whose descriptor matches, an entry without a platform counting as
// linux/amd64 (what pulls do).
func (a *Archive) pickChild(d v1.Descriptor, platform v1.Platform, depth int) (v1.Descriptor, error) {
	if depth > maxIndexDepth {
		return v1.Descriptor{}, fmt.Errorf("index %s: indexes nested more than %d deep: %w", d.Digest, maxIndexDepth, errdefs.ErrInvalidArgument)
	}
	raw, err := a.readBlob(d)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return v1.Descriptor{}, fmt.Errorf("index %s: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	var seen []string
	for _, c := range idx.Manifests {
		p := defaultPlatform
		if c.Platform != nil {
			p = *c.Platform
		}
		if !matches(p, platform) {
			seen = append(seen, platformString(&p))
			continue
		}
		switch {
		case isOneOf(c.MediaType, manifestTypes):
			return c, nil
		case isOneOf(c.MediaType, indexTypes):
			return a.pickChild(c, platform, depth+1)
		}
		return v1.Descriptor{}, fmt.Errorf("index %s: manifest %s for %s: unsupported media type %q: %w",
			d.Digest, c.Digest, platformString(&p), c.MediaType, errdefs.ErrNotImplemented)
	}
	return v1.Descriptor{}, fmt.Errorf("index %s has no image for %s (it has %s): %w",
		d.Digest, platformString(&platform), strings.Join(seen, ", "), errdefs.ErrNotFound)
}

// readImage reads an image's manifest and config, checks that its layers
// are in the archive with the sizes the manifest gives, and returns the
// platform its config names (nil when none).
func (a *Archive) readImage(d v1.Descriptor) (Image, *v1.Platform, error) {
	raw, err := a.readBlob(d)
	if err != nil {
		return Image{}, nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Image{}, nil, fmt.Errorf("manifest %s: %v: %w", d.Digest, err, errdefs.ErrInvalidArgument)
	}
	if !isOneOf(m.Config.MediaType, configTypes) {
		return Image{}, nil, fmt.Errorf("manifest %s: config media type %q is not an image's: %w", d.Digest, m.Config.MediaType, errdefs.ErrNotImplemented)
	}
	cfg, err := a.readBlob(m.Config)
	if err != nil {
		return Image{}, nil, err
	}
	if err := a.checkLayerCount(len(m.Layers)); err != nil {
		return Image{}, nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	img := Image{Manifest: raw, ManifestDigest: d.Digest.String(), Config: cfg}
	for _, l := range m.Layers {
		if !isOneOf(l.MediaType, layerTypes) {
			return Image{}, nil, fmt.Errorf("layer %s: unsupported media type %q: %w", l.Digest, l.MediaType, errdefs.ErrNotImplemented)
		}
		name, err := blobName(l.Digest)
		if err != nil {
			return Image{}, nil, err
		}
		size, err := a.src.stat(name)
		if err != nil {
			return Image{}, nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if size != l.Size {
			return Image{}, nil, fmt.Errorf("layer %s: %s is %d bytes, the manifest says %d: %w", l.Digest, name, size, l.Size, errdefs.ErrDataLoss)
		}
		img.Layers = append(img.Layers, Blob{Digest: l.Digest.String(), Size: l.Size, MediaType: string(l.MediaType), name: name})
	}
	p, err := a.configPlatform(cfg)
	if err != nil {
		return Image{}, nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return img, p, nil
}

// blobName is where a layout holds the blob of a digest. Only sha256 is
// stored; v1.Hash has checked that the hex is hex, of the right length,
// so the name cannot leave blobs/.
func blobName(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" {
		return "", fmt.Errorf("digest %q: only sha256 digests are supported: %w", h, errdefs.ErrNotImplemented)
	}
	return "blobs/sha256/" + h.Hex, nil
}

// readBlob reads a document blob (an index, manifest or config) and
// checks it against its descriptor's size and digest.
func (a *Archive) readBlob(d v1.Descriptor) ([]byte, error) {
	name, err := blobName(d.Digest)
	if err != nil {
		return nil, err
	}
	data, err := a.readDoc(name)
	if err != nil {
		return nil, err
	}
	if got := hashOf(data).String(); got != d.Digest.String() || int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s: digest mismatch: got %s (%d bytes), want %s (%d bytes): %w",
			d.Digest, got, len(data), d.Digest, d.Size, errdefs.ErrDataLoss)
	}
	return data, nil
}

func (a *Archive) readJSON(name string, v any) error {
	data, err := a.readDoc(name)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v: %w", name, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// noImageLeft refuses an archive none of whose images is for platform.
func (a *Archive) noImageLeft(platform v1.Platform) error {
	if len(a.Images) > 0 {
		return nil
	}
	return fmt.Errorf("no image for %s in the archive (skipped: %s): %w",
		platformString(&platform), strings.Join(a.Skipped, "; "), errdefs.ErrNotFound)
}
