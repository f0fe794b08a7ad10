package cri

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
)

// imageVolumes are the images a container mounts as volumes (KEP-4639),
// held from lookup until the container's record pins their layers.
type imageVolumes struct {
	lower    map[string][]string // layer dirs, top first, by Mount.image.image
	ids      map[string]string   // image ID, by Mount.image.image
	layers   []string            // every layer dir, for the record's pins
	releases []func()
}

func (v *imageVolumes) release() {
	for _, r := range v.releases {
		r()
	}
}

// holdImageVolumes looks up the images of the image mounts and holds their
// layers. The kubelet pulls an image volume's image before it creates the
// container (CRI: it sets the PullImage result in Mount.image.image), so
// an image that is not in the store is NotFound, not pulled here. The
// caller releases what was held, on failure too.
func (s *Server) holdImageVolumes(mounts []*criapi.Mount) (*imageVolumes, error) {
	v := &imageVolumes{lower: map[string][]string{}, ids: map[string]string{}}
	for _, m := range mounts {
		ref := m.GetImage().GetImage()
		if _, ok := v.lower[ref]; ok || ref == "" {
			continue // an empty ref is cri/spec's to refuse
		}
		img, err := s.images.Get(ref)
		if err == nil {
			var dirs []string
			var release func()
			dirs, release, err = s.images.HoldLayers(img.ID)
			if err == nil {
				v.releases = append(v.releases, release)
				v.lower[ref], v.ids[ref] = dirs, img.ID
				v.layers = append(v.layers, dirs...)
				continue
			}
		}
		if errors.Is(err, errdefs.ErrNotFound) {
			return v, fmt.Errorf("mount %q: image %s is not present (an image volume's image is pulled before CreateContainer): %w",
				m.GetContainerPath(), ref, errdefs.ErrNotFound)
		}
		return v, fmt.Errorf("mount %q: image %s: %w", m.GetContainerPath(), ref, err)
	}
	return v, nil
}

// checkImageSubPaths refuses an image_sub_path that is not a directory of
// its image (CRI: "runtimes should fail and return an error"), here at
// create rather than at start. cri/spec has checked the paths' form.
func (s *Server) checkImageSubPaths(mounts []*criapi.Mount, v *imageVolumes) error {
	for _, m := range mounts {
		sub := m.GetImageSubPath()
		if m.GetImage() == nil || sub == "" {
			continue
		}
		err := s.images.CheckDir(v.ids[m.GetImage().GetImage()], sub)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			return fmt.Errorf("mount %q: image_sub_path %q does not exist in image %s: %w",
				m.GetContainerPath(), sub, m.GetImage().GetImage(), errdefs.ErrInvalidArgument)
		case errors.Is(err, errdefs.ErrFailedPrecondition):
			return fmt.Errorf("mount %q: image_sub_path %q is not a directory in image %s: %w",
				m.GetContainerPath(), sub, m.GetImage().GetImage(), errdefs.ErrInvalidArgument)
		case err != nil:
			return fmt.Errorf("mount %q: image_sub_path %q: %w", m.GetContainerPath(), sub, err)
		}
	}
	return nil
}

// withImageRefs adds to the record's mounts the ID of each image mounted,
// which ContainerStatus reports as the volume's image_ref.
func withImageRefs(mounts []runtime.Mount, v *imageVolumes) []runtime.Mount {
	for i := range mounts {
		if mounts[i].Image != "" {
			mounts[i].ImageRef = v.ids[mounts[i].Image]
		}
	}
	return mounts
}
