package image

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/runtime/image/archive"
)

// ImportOptions name what an archive leaves unnamed.
type ImportOptions struct {
	// Name is one more tag for the archive's image; an archive of more
	// than one image is refused with it.
	Name string
	// BaseName is the repository of images that an OCI layout names only
	// by a tag (org.opencontainers.image.ref.name "v1"), as skopeo and
	// `oci:` layouts do. Without it such an archive is refused, unless
	// Name names its one image.
	BaseName string
}

// importNames gives each image of the archive its tags and repo digests,
// normalised as pulls normalise references, so that the kubelet finds
// them by the names pods use (busybox is docker.io/library/busybox:latest).
// A tag given to two of the archive's images is refused: which one it
// would name would depend on the archive's order.
func importNames(images []archive.Image, opts ImportOptions) (tags, digests [][]string, err error) {
	if opts.Name != "" && len(images) != 1 {
		return nil, nil, fmt.Errorf("a name (%s) is for an archive of one image; this one has %d: %w", opts.Name, len(images), errdefs.ErrInvalidArgument)
	}
	owner := map[string]string{}
	for _, img := range images {
		written := slices.Clone(img.Names)
		for _, rn := range img.RefNames {
			// A bare tag says nothing without a repository; Name, when
			// given, names the image in full instead.
			tagOnly := !strings.ContainsAny(rn, "/:@")
			if tagOnly && opts.BaseName == "" && opts.Name != "" {
				continue
			}
			n, err := refName(img.Where, rn, opts.BaseName)
			if err != nil {
				return nil, nil, err
			}
			written = append(written, n)
		}
		if opts.Name != "" {
			written = append(written, opts.Name)
		}
		var t, d []string
		for _, w := range written {
			ref, err := ParseReference(w)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: name: %w", img.Where, err)
			}
			if ref.Digest != "" {
				// A digest name must be the image's own.
				if ref.Digest != img.Resolved && ref.Digest != img.ManifestDigest {
					return nil, nil, fmt.Errorf("%s: name %s: the image's digest is %s: %w", img.Where, w, img.ManifestDigest, errdefs.ErrInvalidArgument)
				}
				d = appendNew(d, ref.Repository()+"@"+ref.Digest)
				continue
			}
			tag := ref.TagRef()
			if prev, ok := owner[tag]; ok && prev != img.Where {
				return nil, nil, fmt.Errorf("%s and %s are both named %s: %w", prev, img.Where, tag, errdefs.ErrInvalidArgument)
			}
			owner[tag] = img.Where
			t = appendNew(t, tag)
			// The digest a registry resolves the name to, as a pull
			// records it; a docker save image has none.
			if img.Resolved != "" {
				d = appendNew(d, ref.Repository()+"@"+img.Resolved)
			}
		}
		tags, digests = append(tags, t), append(digests, d)
	}
	return tags, digests, nil
}

// refName reads org.opencontainers.image.ref.name: a full reference when
// it has a registry, a path or a tag separator, else only a tag, which
// the base name's repository completes.
func refName(where, rn, base string) (string, error) {
	if strings.ContainsAny(rn, "/:@") { // a registry, a path, a tag or a digest
		return rn, nil
	}
	if base == "" {
		return "", fmt.Errorf("%s is named only by the tag %q (org.opencontainers.image.ref.name): give its repository (--base-name) or its name (--name): %w",
			where, rn, errdefs.ErrInvalidArgument)
	}
	return base + ":" + rn, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
