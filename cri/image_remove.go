package cri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// RemoveImage removes an image, with all its tags, by ID, tag or digest.
// Removing an image that is not stored succeeds (CRI: RemoveImage is idempotent).
func (s *Server) RemoveImage(ctx context.Context, req *criapi.RemoveImageRequest) (*criapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("remove image: image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	err := s.images.Remove(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &criapi.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Removed image", "image", ref)
	return &criapi.RemoveImageResponse{}, nil
}
