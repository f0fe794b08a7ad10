package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

func openStore(t *testing.T, dir string, reg config.Registry) *Store {
	t.Helper()
	s, dropped, err := Open(dir, reg, config.Image{}, NodePlatform(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) > 0 {
		t.Fatalf("Open dropped images %v", dropped)
	}
	return s
}

// entriesIn lists what a store directory holds, for "nothing left" checks.
func entriesIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPullListRemoveRestart(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	byTag, byDigest := reg.Push(t, "test/busybox:1", testregistry.Busybox(t, "1000:1000"))
	dir := t.TempDir()
	s := openStore(t, dir, config.Registry{})
	ctx := context.Background()

	img, err := s.Pull(ctx, byTag, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if img.RepoTags[0] != byTag || !strings.HasPrefix(img.RepoDigests[0], reg.Host+"/test/busybox@sha256:") {
		t.Fatalf("names: %v %v", img.RepoTags, img.RepoDigests)
	}
	if img.User != "1000:1000" || img.Size <= 0 || len(img.Layers) != 1 {
		t.Fatalf("image %+v", img)
	}
	byDig, err := s.Pull(ctx, byDigest, Auth{})
	if err != nil || byDig.ID != img.ID {
		t.Fatalf("pull by digest: %v, id %s want %s", err, byDig.ID, img.ID)
	}
	for _, ref := range []string{byTag, byDigest, img.ID, strings.TrimPrefix(img.ID, "sha256:"), img.ID[7:19]} {
		if got, err := s.Get(ref); err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %v, %v", ref, got.ID, err)
		}
	}
	dirs, err := s.LayerDirs(img.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dirs[0], "bin", "sh")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("bin/sh in layer: %v %v", fi, err)
	}
	if u := s.Usage(); u.Bytes < 1<<20 || u.Inodes < 20 {
		t.Fatalf("usage %+v too small for busybox", u)
	}

	// A restart finds everything.
	s2 := openStore(t, dir, config.Registry{})
	if got, err := s2.Get(byTag); err != nil || got.ID != img.ID {
		t.Fatalf("after reopen: %v %v", got.ID, err)
	}
	if s2.Usage() != s.Usage() {
		t.Fatalf("usage after reopen %+v, before %+v", s2.Usage(), s.Usage())
	}
	if err := s2.Remove(byTag); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Get(img.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if err := s2.Remove(byTag); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
	for _, sub := range []string{"blobs/sha256", "layers/sha256", "trash", "tmp", "ingest"} {
		if left := entriesIn(t, filepath.Join(dir, sub)); len(left) > 0 {
			t.Errorf("%s not empty after Remove: %v", sub, left)
		}
	}
}

func TestConcurrentPullsShareDownload(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 2, 1<<20, 1)
	byTag, _ := reg.Push(t, "shared:1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	release := reg.Stall(d.String())
	s := openStore(t, t.TempDir(), config.Registry{})
	obs := &pullObserver{}
	s.UseObserver(obs)

	var wg sync.WaitGroup
	ids := make([]string, 5)
	errs := make([]error, 5)
	for i := range ids {
		wg.Go(func() {
			got, err := s.Pull(context.Background(), byTag, Auth{})
			ids[i], errs[i] = got.ID, err
		})
	}
	<-reg.Stalled()
	time.Sleep(100 * time.Millisecond) // let every caller join the flight
	release()
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Fatalf("pull %d: %s, %v", i, ids[i], errs[i])
		}
	}
	if n := reg.BlobRequests(d.String()); n != 1 {
		t.Fatalf("layer downloaded %d times, want 1", n)
	}
	// One flight is one pull, and its bytes are the manifest, the config
	// and each layer blob, once.
	want := int64(0)
	for _, l := range layers {
		n, _ := l.Size()
		want += n
	}
	rawManifest, _ := img.RawManifest()
	rawConfig, _ := img.RawConfigFile()
	want += int64(len(rawManifest) + len(rawConfig))
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.pulls != 1 || obs.failed != 0 || obs.bytes != want || obs.took <= 0 {
		t.Errorf("observed %d pulls (%d failed, %s), %d bytes; want 1 pull, %d bytes", obs.pulls, obs.failed, obs.took, obs.bytes, want)
	}
}

// pullObserver records what the store reports to its Observer.
type pullObserver struct {
	mu                   sync.Mutex
	pulls, failed, bytes int64
	took                 time.Duration
}

func (o *pullObserver) ObservePull(took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pulls++
	o.took += took
	if err != nil {
		o.failed++
	}
}

func (o *pullObserver) ObservePullBytes(n int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bytes += n
}

func TestCancelledWaiterDoesNotFailOthers(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 1, 1<<20, 2)
	byTag, _ := reg.Push(t, "cancel:1", img)
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	release := reg.Stall(d.String())
	s := openStore(t, t.TempDir(), config.Registry{})

	impatient, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { _, err := s.Pull(impatient, byTag, Auth{}); errc <- err }()
	<-reg.Stalled()
	go func() { _, err := s.Pull(context.Background(), byTag, Auth{}); errc <- err }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient pull: %v, want Canceled", err)
	}
	release()
	if err := <-errc; err != nil {
		t.Fatalf("patient pull failed with the impatient one: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 1, 64<<10, 3)
	byTag, _ := reg.Push(t, "err/img:1", img)
	dead := testregistry.Start(t)
	deadHost := dead.Host
	dead.Close()
	for _, tc := range []struct {
		name, ref string
		kind      error
		words     string
	}{
		{"empty", "", errdefs.ErrInvalidArgument, "empty"},
		{"unparsable", "Not A Ref!", errdefs.ErrInvalidArgument, "Not A Ref!"},
		{"unknown tag", reg.Host + "/err/img:nope", errdefs.ErrNotFound, "not found"},
		{"unknown repo", reg.Host + "/nothing/here:1", errdefs.ErrNotFound, "not found"},
		{"unreachable", deadHost + "/x:1", errdefs.ErrUnavailable, deadHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), config.Registry{})
			_, err := s.Pull(context.Background(), tc.ref, Auth{})
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.words) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.kind, tc.words)
			}
			if len(s.List()) != 0 {
				t.Fatal("an image was committed")
			}
		})
	}
	_ = byTag
}

func TestCorruptBlobCommitsNothing(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 2, 256<<10, 4)
	byTag, _ := reg.Push(t, "corrupt:1", img)
	layers, _ := img.Layers()
	bad, _ := layers[1].Digest()
	reg.Corrupt(bad.String())
	dir := t.TempDir()
	s := openStore(t, dir, config.Registry{})
	_, err := s.Pull(context.Background(), byTag, Auth{})
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Fatalf("got %v, want DataLoss digest mismatch", err)
	}
	if _, err := os.Stat(s.blobPath(bad.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt blob committed: %v", err)
	}
	if len(s.List()) != 0 || len(entriesIn(t, filepath.Join(dir, "ingest"))) != 0 || len(entriesIn(t, filepath.Join(dir, "tmp"))) != 0 {
		t.Fatal("pull left an image or temp files")
	}
	// The good layer fetched alongside, and the manifest and config, go
	// with the failed pull, not at the next start.
	if left := entriesIn(t, filepath.Join(dir, "layers/sha256")); len(left) != 0 {
		t.Fatalf("layers of a failed pull are kept: %v", left)
	}
	if left := entriesIn(t, filepath.Join(dir, "blobs/sha256")); len(left) != 0 {
		t.Fatalf("blobs of a failed pull are kept: %v", left)
	}
}

func TestCredentials(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	reg.RequireAuth("alice", "s3cret")
	byTag, _ := reg.Push(t, "private:1", testregistry.Random(t, 1, 64<<10, 5))
	s := openStore(t, t.TempDir(), config.Registry{})
	ctx := context.Background()
	_, err := s.Pull(ctx, byTag, Auth{})
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "requires credentials") {
		t.Fatalf("no credentials: %v", err)
	}
	_, err = s.Pull(ctx, byTag, Auth{Username: "alice", Password: "wrong"})
	if !errors.Is(err, errdefs.ErrUnauthenticated) || !strings.Contains(err.Error(), "rejected the credentials") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.Pull(ctx, byTag, Auth{Username: "alice", Password: "s3cret"}); err != nil {
		t.Fatalf("right password: %v", err)
	}
	// "auth" is base64("alice:s3cret"), as docker config files carry it.
	if _, err := s.Pull(ctx, byTag, Auth{Auth: "YWxpY2U6czNjcmV0", ServerAddress: reg.Host}); err != nil {
		t.Fatalf("auth field: %v", err)
	}
}

func TestMirrorAndTagMove(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	first := testregistry.Random(t, 1, 64<<10, 6)
	reg.Push(t, "library/busybox:latest", first)
	hosts := config.Registry{Hosts: map[string]config.Host{
		"docker.io": {Mirrors: []config.Mirror{{Endpoint: "http://" + reg.Host}}, SkipServer: true},
	}}
	s := openStore(t, t.TempDir(), hosts)
	ctx := context.Background()
	a, err := s.Pull(ctx, "busybox", Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if a.RepoTags[0] != "docker.io/library/busybox:latest" || !strings.HasPrefix(a.RepoDigests[0], "docker.io/library/busybox@") {
		t.Fatalf("names through mirror: %v %v", a.RepoTags, a.RepoDigests)
	}
	// The tag moves to a new image; the old one stays, untagged.
	reg.Push(t, "library/busybox:latest", testregistry.Random(t, 1, 64<<10, 7))
	b, err := s.Pull(ctx, "docker.io/library/busybox:latest", Auth{})
	if err != nil || b.ID == a.ID {
		t.Fatalf("second pull: %v (id %s)", err, b.ID)
	}
	old, err := s.Get(a.ID)
	if err != nil || len(old.RepoTags) != 0 || len(old.RepoDigests) != 1 {
		t.Fatalf("old image: %+v, %v", old, err)
	}
}

func TestMultiArchIndex(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	native := testregistry.Random(t, 1, 64<<10, 8)
	other := testregistry.Random(t, 1, 64<<10, 9)
	foreign := v1.Platform{OS: "linux", Architecture: "s390x"}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &foreign}},
		mutate.IndexAddendum{Add: native, Descriptor: v1.Descriptor{Platform: new(NodePlatform())}})
	ref := reg.PushIndex(t, "multi:1", idx)
	s := openStore(t, t.TempDir(), config.Registry{})
	img, err := s.Pull(context.Background(), ref, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := native.ConfigName()
	if img.ID != want.String() {
		t.Fatalf("picked %s, want the %s image %s", img.ID, NodePlatform(), want)
	}
	idxDigest, _ := idx.Digest()
	if img.RepoDigests[0] != reg.Host+"/multi@"+idxDigest.String() {
		t.Fatalf("repo digest %v, want the index digest %s", img.RepoDigests, idxDigest)
	}
}

// TestOversizedBlobStopsAtDeclaredSize regresses a download that went on
// past the size the manifest declares, as far as the registry cared to
// send, before the digest check refused it.
func TestOversizedBlobStopsAtDeclaredSize(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 1, 64<<10, 6)
	byTag, _ := reg.Push(t, "oversized:1", img)
	layers, _ := img.Layers()
	dg, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	const extra = 1 << 30
	reg.Pad(dg.String(), extra)
	dir := t.TempDir()
	s := openStore(t, dir, config.Registry{})
	_, err := s.Pull(context.Background(), byTag, Auth{})
	want := fmt.Sprintf("blob is larger than the %d bytes its manifest declares", size)
	if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), dg.String()) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want DataLoss naming %s and %q", err, dg, want)
	}
	// What the client took is bounded by socket buffers, not by the blob.
	if sent := reg.Sent(dg.String()); sent > size+64<<20 {
		t.Errorf("the registry sent %d bytes of a %d-byte blob before the pull hung up", sent, size)
	}
	if len(s.List()) != 0 || len(entriesIn(t, filepath.Join(dir, "ingest"))) != 0 {
		t.Fatal("pull left an image or an ingest file")
	}
	if _, err := os.Stat(s.blobPath(dg.String())); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("oversized blob committed: %v", err)
	}
}

// TestLayerLimits regresses unbounded unpacking: a layer past the store's
// byte or entry limit fails the pull with ResourceExhausted and leaves no
// image, layer or temp directory.
func TestLayerLimits(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	files := []testregistry.File{{Name: "d/", Mode: 0o755, Typ: '5'}}
	for i := range 10 {
		files = append(files, testregistry.File{Name: fmt.Sprintf("d/f%d", i), Mode: 0o644, Data: bytes.Repeat([]byte{'x'}, 1000)})
	}
	byTag, _ := reg.Push(t, "limits:1", testregistry.Image(t, [][]testregistry.File{files}))
	for _, tc := range []struct {
		lim  config.Image
		want string
	}{
		{config.Image{MaxLayerBytes: 5000, MaxLayerEntries: 100}, "files larger than 5000 bytes in all"},
		{config.Image{MaxLayerBytes: 1 << 20, MaxLayerEntries: 5}, "more than 5 entries"},
		{config.Image{MaxLayerBytes: 10000, MaxLayerEntries: 11}, ""},
	} {
		dir := t.TempDir()
		s, _, err := Open(dir, config.Registry{}, tc.lim, NodePlatform(), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Pull(context.Background(), byTag, Auth{})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: pull within the limits: %v", tc.lim, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want ResourceExhausted with %q", tc.lim, err, tc.want)
		}
		if len(s.List()) != 0 || len(entriesIn(t, filepath.Join(dir, "tmp"))) != 0 || len(entriesIn(t, filepath.Join(dir, "layers/sha256"))) != 0 {
			t.Errorf("%+v: a failed pull left an image, a layer or a temp dir", tc.lim)
		}
	}
}
