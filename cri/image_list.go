package cri

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamChunk is how many images one StreamImages message carries.
const streamChunk = 500

// ListImages lists stored images; a filter names one image by reference or ID.
func (s *Server) ListImages(_ context.Context, req *criapi.ListImagesRequest) (*criapi.ListImagesResponse, error) {
	imgs, err := s.listImages(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &criapi.ListImagesResponse{Images: imgs}, nil
}

// StreamImages is ListImages in chunks, for nodes whose image list exceeds a
// gRPC message (KEP-5825).
func (s *Server) StreamImages(req *criapi.StreamImagesRequest, stream grpc.ServerStreamingServer[criapi.StreamImagesResponse]) error {
	imgs, err := s.listImages(req.GetFilter())
	if err != nil {
		return err
	}
	for len(imgs) > 0 {
		n := min(len(imgs), streamChunk)
		if err := stream.Send(&criapi.StreamImagesResponse{Images: imgs[:n]}); err != nil {
			return err
		}
		imgs = imgs[n:]
	}
	return nil
}

func (s *Server) listImages(filter *criapi.ImageFilter) ([]*criapi.Image, error) {
	if ref := filter.GetImage().GetImage(); ref != "" {
		img, err := s.images.Get(ref)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*criapi.Image{toCRIImage(img)}, nil
	}
	list := s.images.List()
	out := make([]*criapi.Image, 0, len(list))
	for _, img := range list {
		out = append(out, toCRIImage(img))
	}
	return out, nil
}
