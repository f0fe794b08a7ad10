package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dockerEntry is one image of docker save's manifest.json. Docker 20.10
// names the config "<id>.json" and layers "<v1 id>/layer.tar" (a symlink
// to an earlier one when two images share a layer); go-containerregistry
// names them by digest. The names say nothing the content does not: the
// config's digest is the image's ID, and the store checks each layer
// against the config's diff IDs.
type dockerEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
	// LayerSources describes foreign layers (Windows base layers), which
	// are not in the archive.
	LayerSources map[string]json.RawMessage
}

// readDocker reads manifest.json and makes each image a Docker schema 2
// manifest of its config and layers as the archive holds them (a docker
// save layer is an uncompressed tar, go-containerregistry's a gzip one),
// so that the store keeps what it keeps for a pull. An image whose config
// names another platform is skipped; entries that make the same manifest
// are one image.
func (a *Archive) readDocker(sp *spool, platform v1.Platform) error {
	var entries []dockerEntry
	if err := a.readJSON("manifest.json", &entries); err != nil {
		return err
	}
	if err := checkImageCount("manifest.json", len(entries)); err != nil {
		return err
	}
	// Entries naming the same config and layers are one image: read,
	// hashed and matched against the platform once.
	type result struct {
		img  Image
		skip string
	}
	read := map[string]result{}
	for i, e := range entries {
		where := fmt.Sprintf("manifest.json entry %d", i)
		key, _ := json.Marshal([]any{e.Config, e.Layers}) // strings encode
		r, ok := read[string(key)]
		if !ok {
			img, err := a.readDockerImage(sp, e)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			cfgPlatform, err := a.configPlatform(img.Config)
			if err != nil {
				return fmt.Errorf("%s: config %s: %w", where, shortName(e.Config), err)
			}
			r.img = img
			if cfgPlatform != nil && !matches(*cfgPlatform, platform) {
				r.skip = platformString(cfgPlatform)
			}
			read[string(key)] = r
		}
		if r.skip != "" {
			a.Skipped = append(a.Skipped, where+": "+r.skip)
			continue
		}
		img := r.img
		img.Where, img.Names = where, e.RepoTags
		if !a.mergeImage(img) {
			a.Images = append(a.Images, img)
		}
	}
	return a.noImageLeft(platform)
}

func (a *Archive) readDockerImage(sp *spool, e dockerEntry) (Image, error) {
	if len(e.LayerSources) > 0 {
		return Image{}, fmt.Errorf("foreign layers (LayerSources) are not supported: %w", errdefs.ErrNotImplemented)
	}
	if e.Config == "" {
		return Image{}, fmt.Errorf("no Config: %w", errdefs.ErrInvalidArgument)
	}
	if err := a.checkLayerCount(len(e.Layers)); err != nil {
		return Image{}, err
	}
	cfg, err := a.readDoc(e.Config)
	if err != nil {
		return Image{}, fmt.Errorf("config: %w", err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(cfg)), Digest: hashOf(cfg)},
	}
	img := Image{Config: cfg}
	for _, name := range e.Layers {
		l, err := sp.lookup(name)
		if err != nil {
			return Image{}, fmt.Errorf("layer: %w", err)
		}
		mt, err := sniffLayer(sp, l)
		if err != nil {
			return Image{}, fmt.Errorf("layer %s: %w", shortName(name), err)
		}
		dg, err := v1.NewHash(l.digest)
		if err != nil {
			return Image{}, fmt.Errorf("layer %s: %w", shortName(name), err)
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Size: l.size, Digest: dg})
		clean, _ := cleanName(name) // lookup has checked it
		img.Layers = append(img.Layers, Blob{Digest: l.digest, Size: l.size, MediaType: string(mt), name: clean})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Image{}, fmt.Errorf("make manifest: %w", err)
	}
	img.Manifest, img.ManifestDigest = raw, hashOf(raw).String()
	return img, nil
}

// sniffLayer gives a docker-archive layer the media type of its
// compression, recognised by magic number as the store's unpacker does.
func sniffLayer(sp *spool, e *entry) (types.MediaType, error) {
	magic, err := sp.peek(e, 4)
	if err != nil {
		return "", err
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return types.DockerLayer, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return types.OCILayerZStd, nil
	}
	return types.DockerUncompressedLayer, nil
}

func hashOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
