package bench

import (
	"context"
	"flag"
	"os"
	"testing"

	internalapi "k8s.io/cri-api/pkg/apis"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func TestMain(m *testing.M) {
	if f := flag.Lookup("test.bench"); f != nil {
		flag.Parse()
		if f.Value.String() == "" {
			os.Exit(m.Run()) // nothing to benchmark: don't build crib
		}
	}
	os.Exit(harness.Main(m))
}

// BenchmarkPull pulls a 5-layer, 50 MB image (incompressible random files)
// from a registry on 127.0.0.1 through the CRI, as the kubelet does, then
// removes it untimed. Sub-benchmarks: crib and containerd.
func BenchmarkPull(b *testing.B) {
	reg := testregistry.Start(b)
	ref, _ := reg.Push(b, "bench/pull:5x10m", testregistry.Random(b, 5, 10<<20, 42))

	b.Run("crib", func(b *testing.B) {
		e := newEnv(b)
		pullLoop(b, e.Start().Clients().Images, ref)
	})
	b.Run("containerd", func(b *testing.B) {
		pullLoop(b, harness.StartContainerd(b, harness.ContainerdConfig{Registry: reg.Host}).Images, ref)
	})
}

func pullLoop(b *testing.B, images internalapi.ImageManagerService, ref string) {
	ctx := context.Background()
	spec := &criapi.ImageSpec{Image: ref}
	b.SetBytes(50 << 20)
	for b.Loop() {
		if _, err := images.PullImage(ctx, spec, nil, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := images.RemoveImage(ctx, spec); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
