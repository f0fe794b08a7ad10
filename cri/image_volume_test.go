package cri

import (
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestImageVolumeStatusRef: ContainerStatus reports an image volume's
// image as asked and its ID as image_ref (critest compares it with what
// PullImage returned); a host-path mount gets no image.
func TestImageVolumeStatusRef(t *testing.T) {
	in := []*criapi.Mount{
		{ContainerPath: "/a", HostPath: "/srv/a"},
		{ContainerPath: "/v", Readonly: true, Image: &criapi.ImageSpec{Image: "busybox:1"}, ImageSubPath: "etc"},
	}
	vols := &imageVolumes{ids: map[string]string{"busybox:1": "sha256:abc"}}
	out := toCRIMounts(withImageRefs(toRecordMounts(in), vols))
	if out[0].GetImage() != nil {
		t.Errorf("host-path mount has an image: %v", out[0])
	}
	if img := out[1].GetImage(); img.GetImage() != "busybox:1" || img.GetImageRef() != "sha256:abc" || out[1].GetImageSubPath() != "etc" {
		t.Errorf("image volume reported as %v, want busybox:1 with image_ref sha256:abc and sub path etc", out[1])
	}
}
