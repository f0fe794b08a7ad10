package e2e

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestKillDuringPull SIGKILLs the daemon while a layer download hangs
// halfway, then shows the store is consistent and the pull can be redone.
func TestKillDuringPull(t *testing.T) {
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 5, 512<<10, 21)
	byTag, _ := reg.Push(t, "crash/img:1", img)
	layers, _ := img.Layers()
	dg, _ := layers[2].Digest()
	release := reg.Stall(dg.String())
	e := harness.NewEnv(t)
	d := e.Start()
	c := d.Clients()
	ctx := context.Background()

	pullErr := make(chan error, 1)
	go func() { _, err := c.Images.PullImage(ctx, spec(byTag), nil, nil); pullErr <- err }()
	select {
	case <-reg.Stalled():
	case <-time.After(30 * time.Second):
		t.Fatal("the pull never reached the stalled layer")
	}
	d.Kill()
	if err := <-pullErr; err == nil {
		t.Fatal("pull succeeded although the daemon was killed")
	}
	release()

	d = e.Start()
	c = d.Clients()
	if list, err := c.Images.ListImages(ctx, nil); err != nil || len(list) != 0 {
		t.Fatalf("after the crash ListImages = %v, %v; want nothing", list, err)
	}
	if n := harness.CheckImageStore(t, e.Root); n != 0 {
		t.Fatalf("%d images indexed after a crashed pull", n)
	}
	id, err := c.Images.PullImage(ctx, spec(byTag), nil, nil)
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	d.Kill()
	d = e.Start()
	if st, err := d.Clients().Images.ImageStatus(ctx, spec(byTag), false); err != nil || st.Image.GetId() != id {
		t.Fatalf("image pulled before a SIGKILL is gone: %v, %v", st, err)
	}
	harness.CheckImageStore(t, e.Root)
}

// TestKillAtRandomPoints kills the daemon at random moments of pulls and
// removals; after each restart the store must be whole: an image is either
// all there or not there.
func TestKillAtRandomPoints(t *testing.T) {
	reg := testregistry.Start(t)
	var refs []string
	for i := range 3 {
		tag, _ := reg.Push(t, "chaos/img:"+string(rune('a'+i)), testregistry.Random(t, 4, 256<<10, uint64(30+i)))
		refs = append(refs, tag)
	}
	e := harness.NewEnv(t)
	rng := rand.New(rand.NewPCG(7, 7))
	ctx := context.Background()
	d := e.Start()
	// Measure one pull, so the kills land within the work.
	start := time.Now()
	if _, err := d.Clients().Images.PullImage(ctx, spec(refs[0]), nil, nil); err != nil {
		t.Fatal(err)
	}
	span := time.Since(start)
	for i := range 12 {
		c := d.Clients()
		ref := refs[i%len(refs)]
		go func() {
			if i%3 == 2 {
				_ = c.Images.RemoveImage(ctx, spec(refs[(i+1)%len(refs)]))
			}
			_, _ = c.Images.PullImage(ctx, spec(ref), nil, nil)
		}()
		time.Sleep(time.Duration(rng.Int64N(int64(span) + 1)))
		d.Kill()
		d = e.Start()
		harness.CheckImageStore(t, e.Root)
		if t.Failed() {
			t.Fatalf("store inconsistent after kill %d", i)
		}
	}
	// Whatever survived is usable, and every image pulls afterwards.
	c := d.Clients()
	for _, ref := range refs {
		if _, err := c.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
			t.Fatalf("pull %s after the kills: %v", ref, err)
		}
	}
	if list, _ := c.Images.ListImages(ctx, &criapi.ImageFilter{}); len(list) != len(refs) {
		t.Fatalf("ListImages has %d images, want %d", len(list), len(refs))
	}
	harness.CheckImageStore(t, e.Root)
}
