package archive

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/test/testregistry"
)

// Regression of a review of `crib image import`: platform strings are the
// archive's, printed on a terminal.

// TestHostilePlatformQuoted: a platform string from the archive is
// written quoted, its control characters escaped, in Skipped and errors.
func TestHostilePlatformQuoted(t *testing.T) {
	img := testregistry.Random(t, 1, 1<<10, 9)
	hostile := v1.Platform{OS: "linux\x1b[2J\x1b[1;1H", Architecture: "amd64\rok", Variant: "v\u202e8"}
	dir := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img, Platform: &hostile},
		testregistry.LayoutEntry{Image: testregistry.Random(t, 1, 1<<10, 10)})
	a, err := OpenLayout(dir, host, noLimits)
	must(t, err)
	defer a.Close()
	if len(a.Skipped) != 1 {
		t.Fatalf("skipped %q", a.Skipped)
	}
	s := a.Skipped[0]
	if strings.ContainsAny(s, "\x1b\r\u202e") || !strings.Contains(s, `"linux\x1b[2J\x1b[1;1H"/"amd64\rok"/"v\u202e8"`) {
		t.Fatalf("skipped %q: want the platform quoted", s)
	}
	if got := platformString(&v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}); got != "linux/arm64/v8" {
		t.Fatalf("a plain platform is written %s", got)
	}
}
