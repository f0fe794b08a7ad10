package cri

import (
	"testing"

	"github.com/crib-runtime/crib/runtime/image"
)

func TestToCRIImageUser(t *testing.T) {
	for _, tc := range []struct {
		user     string
		uid      int64
		hasUID   bool
		username string
	}{
		{"", 0, false, ""},
		{"0", 0, true, ""},
		{"1000", 1000, true, ""},
		{"1000:1000", 1000, true, ""},
		{"nobody", 0, false, "nobody"},
		{"www:www", 0, false, "www"},
	} {
		img := toCRIImage(image.Image{ID: "sha256:x", User: tc.user, Size: 5})
		if (img.Uid != nil) != tc.hasUID || img.Uid.GetValue() != tc.uid || img.Username != tc.username {
			t.Errorf("user %q: uid %v username %q", tc.user, img.Uid, img.Username)
		}
		if img.Spec.Image != "sha256:x" || img.Size != 5 {
			t.Errorf("user %q: %v", tc.user, img)
		}
	}
}
