//go:build kind

// Package kind holds what make kind needs from the test code: the images the
// Kubernetes e2e suite runs its pods in, written as Docker archives for the
// kind nodes to preload (hack/kind.sh). Not run by make test.
package kind

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/crib-runtime/crib/test/testregistry"
)

// TestWriteE2EImages writes the e2e suite's images (the node e2e suite's
// set: k8s.io/kubernetes v1.37.2 test/utils/image, the same for the cluster
// suite's specs that make kind runs) under their registry.k8s.io names into
// $CRIB_KIND_E2E_IMAGES, one archive each.
func TestWriteE2EImages(t *testing.T) {
	dir := os.Getenv("CRIB_KIND_E2E_IMAGES")
	if dir == "" {
		t.Fatal("CRIB_KIND_E2E_IMAGES must name the directory to write the archives to")
	}
	for key, img := range testregistry.NodeE2EImages(t) {
		ref := "registry.k8s.io/" + key
		tag, err := name.NewTag(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		file := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(key)+".tar")
		if err := tarball.WriteToFile(file, tag, img); err != nil {
			t.Fatalf("write %s: %v", ref, err)
		}
		t.Logf("%s: %s", ref, file)
	}
}
