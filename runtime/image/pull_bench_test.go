package image

import (
	"context"
	"testing"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

// BenchmarkStorePull is the store's share of a pull (no gRPC, no daemon):
// a 5-layer, 50 MB image from a registry on 127.0.0.1. Profile it with
// -cpuprofile to see where a pull spends its time.
func BenchmarkStorePull(b *testing.B) {
	testutil.RequireRoot(b)
	reg := testregistry.Start(b)
	ref, _ := reg.Push(b, "bench/store:5x10m", testregistry.Random(b, 5, 10<<20, 42))
	s, _, err := Open(b.TempDir(), config.Registry{}, config.Image{}, NodePlatform(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(50 << 20)
	for b.Loop() {
		if _, err := s.Pull(context.Background(), ref, Auth{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Remove(ref); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
