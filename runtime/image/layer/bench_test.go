package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/crib-runtime/crib/internal/testutil"
)

// BenchmarkApply unpacks a synthetic layer shaped like a language runtime
// image: about 50 MB in 2,000 files spread over 100 directories, sizes from
// a few bytes to 50 KB, a few hard links and symlinks. Set TMPDIR to a
// tmpfs to measure the code rather than the disk.
func BenchmarkApply(b *testing.B) {
	testutil.RequireRoot(b)
	layer := benchLayer(b)
	b.SetBytes(int64(len(layer)))
	b.ReportAllocs()
	parent := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		dir := filepath.Join(parent, fmt.Sprint(i))
		b.StopTimer()
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Apply(context.Background(), dir, bytes.NewReader(layer), Limits{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func benchLayer(b *testing.B) []byte {
	b.Helper()
	var ents []ent
	content := bytes.Repeat([]byte("0123456789abcdef"), 100_000/16+1)
	for d := range 100 {
		dir := fmt.Sprintf("usr/lib/pkg%03d/", d)
		ents = append(ents, dirEnt(dir))
		for f := range 20 {
			n := d*20 + f
			// A spread of sizes averaging 25 KB: many small, some large.
			size := (n * 7919) % 50_000
			ents = append(ents, fileEnt(fmt.Sprintf("%sfile%02d.so", dir, f), string(content[:size])))
		}
		ents = append(ents, symEnt(dir+"current", "file00.so"), linkEnt(dir+"hard", dir+"file01.so"))
	}
	return buildTar(b, ents...)
}
