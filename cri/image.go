package cri

import (
	"strconv"
	"strings"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime/image"
)

// toCRIImage converts a stored image. The image config's user becomes Uid
// when numeric and Username otherwise; a group after ':' is not reported.
func toCRIImage(img image.Image) *criapi.Image {
	out := &criapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Spec:        &criapi.ImageSpec{Image: img.ID},
	}
	user, _, _ := strings.Cut(img.User, ":")
	if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
		out.Uid = &criapi.Int64Value{Value: uid}
	} else {
		out.Username = user
	}
	return out
}

func toAuth(a *criapi.AuthConfig) image.Auth {
	if a == nil {
		return image.Auth{}
	}
	return image.Auth{
		Username: a.Username, Password: a.Password, Auth: a.Auth, ServerAddress: a.ServerAddress,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	}
}
