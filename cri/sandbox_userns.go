package cri

import (
	"fmt"

	"github.com/containerd/errdefs"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/sandbox"
	"github.com/crib-runtime/crib/sandbox/nsfs"
)

// userMapsOf reads a pod's user namespace option: nil for the host's (no
// option, or NODE), the mappings for POD (hostUsers: false). CONTAINER and
// TARGET have no meaning for a pod's user namespace (critest checks that
// they are refused). sandbox validates the mappings themselves.
func userMapsOf(u *criapi.UserNamespace) (*nsfs.UserMaps, error) {
	if u == nil {
		return nil, nil // the CRI's zero mode (POD) does not apply
	}
	switch u.GetMode() {
	case criapi.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return nil, fmt.Errorf("user namespace mode NODE with id mappings: %w", errdefs.ErrInvalidArgument)
		}
		return nil, nil
	case criapi.NamespaceMode_POD:
	default:
		return nil, fmt.Errorf("user namespace mode %s is not supported (only NODE and POD): %w", u.GetMode(), errdefs.ErrInvalidArgument)
	}
	conv := func(in []*criapi.IDMapping) []nsfs.IDMap {
		out := make([]nsfs.IDMap, len(in))
		for i, m := range in {
			out[i] = nsfs.IDMap{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Length: m.GetLength()}
		}
		return out
	}
	return &nsfs.UserMaps{UIDs: conv(u.GetUids()), GIDs: conv(u.GetGids())}, nil
}

// usernsOf is the pod's user namespace option as its record keeps it.
func usernsOf(p *sandbox.Pod) *criapi.UserNamespace {
	if p.UserNS == "" {
		return nil
	}
	conv := func(in []nsfs.IDMap) []*criapi.IDMapping {
		out := make([]*criapi.IDMapping, len(in))
		for i, m := range in {
			out[i] = &criapi.IDMapping{ContainerId: m.ContainerID, HostId: m.HostID, Length: m.Length}
		}
		return out
	}
	return &criapi.UserNamespace{Mode: criapi.NamespaceMode_POD, Uids: conv(p.UserMaps.UIDs), Gids: conv(p.UserMaps.GIDs)}
}
