package cri

import (
	"context"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsInfo reports the bytes and inodes the image store uses. Container
// writable layers are not reported until crib creates them.
func (s *Server) ImageFsInfo(context.Context, *criapi.ImageFsInfoRequest) (*criapi.ImageFsInfoResponse, error) {
	u := s.images.Usage()
	return &criapi.ImageFsInfoResponse{
		ImageFilesystems: []*criapi.FilesystemUsage{{
			Timestamp:  time.Now().UnixNano(),
			FsId:       &criapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
			UsedBytes:  &criapi.UInt64Value{Value: uint64(u.Bytes)},
			InodesUsed: &criapi.UInt64Value{Value: uint64(u.Inodes)},
		}},
	}, nil
}
