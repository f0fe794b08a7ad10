//go:build kind

// Package kind holds what make kind needs from the test code: the images the
// Kubernetes e2e suite runs its pods in, written as Docker archives for the
// kind nodes to load (hack/kind.sh). Not run by make test.
package kind

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/crib-runtime/crib/test/testregistry"
)

// dnsQueriers are the images whose containers the cluster suite's DNS
// specs query with dig (the node suite never does): upstream they carry
// bind's dnsutils, which no busybox stand-in has.
var dnsQueriers = map[string]bool{
	testregistry.E2EPath + "agnhost:2.66.1":          true,
	testregistry.E2EPath + "agnhost:2.55":            true,
	testregistry.E2EPath + "glibc-dns-testing:2.1.1": true,
}

// TestWriteE2EImages writes the e2e suite's images (the node e2e suite's
// set: k8s.io/kubernetes v1.37.2 test/utils/image, which the cluster
// suite's specs that make kind runs use too) under their registry.k8s.io
// names into $CRIB_KIND_E2E_IMAGES, one archive each. The DNS queriers'
// stand-ins get a Debian root with dig beneath their layers
// ($CRIB_KIND_DNS_ROOTFS, a tar: hack/kind-image.sh rootfs bind9-dnsutils).
func TestWriteE2EImages(t *testing.T) {
	dir := os.Getenv("CRIB_KIND_E2E_IMAGES")
	rootfs := os.Getenv("CRIB_KIND_DNS_ROOTFS")
	if dir == "" || rootfs == "" {
		t.Fatal("CRIB_KIND_E2E_IMAGES must name the directory to write the archives to, CRIB_KIND_DNS_ROOTFS a root file system tar with dig")
	}
	dnsBase, err := tarball.LayerFromFile(rootfs)
	if err != nil {
		t.Fatalf("%s: %v", rootfs, err)
	}
	for key, img := range testregistry.NodeE2EImages(t) {
		if dnsQueriers[key] {
			img = under(t, dnsBase, img)
		}
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

// under is img with base as its first layer, img's config kept.
func under(t *testing.T, base v1.Layer, img v1.Image) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return testregistry.ImageOf(t, cf.Config, append([]v1.Layer{base}, layers...)...)
}
