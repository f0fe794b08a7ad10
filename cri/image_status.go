package cri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": marshalInfo(img)}
	}
	return resp, nil
}
