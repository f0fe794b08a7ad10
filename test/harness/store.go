package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckImageStore verifies the image store under a daemon's root, with no
// pull in flight: every indexed image has every blob (with the right
// digest) and every layer, nothing is stored that no image uses, and no
// temporary file survived. It returns how many images are indexed.
func CheckImageStore(t testing.TB, root string) (images int) {
	t.Helper()
	dir := filepath.Join(root, "images")
	var idx struct {
		Images map[string]struct {
			ID, ManifestDigest string
			Layers             []struct{ Digest, ChainID string }
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "images.json"))
	if err == nil {
		if err := json.Unmarshal(data, &idx); err != nil {
			t.Fatalf("images.json is not valid: %v", err)
		}
	}
	used := map[string]bool{}
	checkBlob := func(d string) {
		hexd := strings.TrimPrefix(d, "sha256:")
		used["blobs/"+hexd] = true
		b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", hexd))
		if err != nil {
			t.Errorf("indexed blob %s: %v", d, err)
			return
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexd {
			t.Errorf("blob %s holds other content", d)
		}
	}
	for _, img := range idx.Images {
		checkBlob(img.ID)
		checkBlob(img.ManifestDigest)
		for _, l := range img.Layers {
			checkBlob(l.Digest)
			c := strings.TrimPrefix(l.ChainID, "sha256:")
			used["layers/"+c] = true
			for _, f := range []string{"diff", "usage.json"} {
				if _, err := os.Stat(filepath.Join(dir, "layers", "sha256", c, f)); err != nil {
					t.Errorf("indexed layer %s: %v", l.ChainID, err)
				}
			}
		}
	}
	for _, sub := range []string{"blobs", "layers"} {
		entries, _ := os.ReadDir(filepath.Join(dir, sub, "sha256"))
		for _, en := range entries {
			if !used[sub+"/"+en.Name()] {
				t.Errorf("%s/%s is stored but no image uses it", sub, en.Name())
			}
		}
	}
	for _, sub := range []string{"ingest", "tmp", "trash", "import"} {
		if entries, _ := os.ReadDir(filepath.Join(dir, sub)); len(entries) > 0 {
			t.Errorf("images/%s holds %d leftovers", sub, len(entries))
		}
	}
	return len(idx.Images)
}
