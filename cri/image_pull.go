package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// PullImage fetches an image and returns its ID, which the kubelet keeps as
// the image reference of the containers it creates from it.
func (s *Server) PullImage(ctx context.Context, req *criapi.PullImageRequest) (*criapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("pull image: image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.images.Pull(ctx, ref, toAuth(req.GetAuth()))
	if err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("Pulled image", "image", ref, "imageID", img.ID, "size", img.Size)
	return &criapi.PullImageResponse{ImageRef: img.ID}, nil
}
