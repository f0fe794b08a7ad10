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

// TestLongArchiveStringsCut: a platform string or a name from the archive
// that is too long to read is cut in Skipped and errors, where 1,024
// entries could otherwise repeat megabytes of it.
func TestLongArchiveStringsCut(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	if got := platformString(&v1.Platform{OS: long, Architecture: "amd64"}); len(got) > 2*maxShown || !strings.Contains(got, "(1048576 bytes)") {
		t.Errorf("platform with a 1 MiB OS written as %d bytes: %.80q…", len(got), got)
	}
	for _, err := range []error{
		func() error { _, err := cleanName("/" + long); return err }(),
		func() error { _, err := (&spool{entries: map[string]*entry{}}).lookup(long + "\x1b[2J"); return err }(),
	} {
		if err == nil || len(err.Error()) > 2*maxShown || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("error for a 1 MiB name: %.120q (%d bytes)", err, len(err.Error()))
		}
	}
}
