package cri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime/image"
)

// ImageStatus returns an image, or a response without one when it is not
// stored (the CRI contract: not an error). Verbose adds the stored record.
func (s *Server) ImageStatus(_ context.Context, req *criapi.ImageStatusRequest) (*criapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("image status: image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.images.Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &criapi.ImageStatusResponse{Image: toCRIImage(img)}
	if !req.GetVerbose() {
		return resp, nil
	}
	cfg, err := s.images.ConfigFile(img.ID)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.ImageStatusResponse{}, nil // removed meanwhile
	}
	if err != nil {
		return nil, err
	}
	resp.Info = map[string]string{"info": marshalInfo(toImageInfo(img, cfg))}
	return resp, nil
}

// imageInfo is a verbose ImageStatus's "info", which crictl inspecti shows
// as .info: containerd's keys (imageSpec, the image's OCI config; chainID,
// its top layer's), then crib's record of the image.
type imageInfo struct {
	ChainID   string         `json:"chainID"`
	ImageSpec *v1.ConfigFile `json:"imageSpec"`
	image.Image
}

func toImageInfo(img image.Image, cfg *v1.ConfigFile) imageInfo {
	info := imageInfo{ImageSpec: cfg, Image: img}
	if n := len(img.Layers); n > 0 {
		info.ChainID = img.Layers[n-1].ChainID
	}
	return info
}
