package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

func spec(ref string) *criapi.ImageSpec { return &criapi.ImageSpec{Image: ref} }

// TestImageLifecycle pulls by tag and digest, lists, inspects, measures and
// removes an image, restarting the daemon in between.
func TestImageLifecycle(t *testing.T) {
	reg := testregistry.Start(t)
	byTag, byDigest := reg.Push(t, "e2e/busybox:1", testregistry.Busybox(t, "1000"))
	e := harness.NewEnv(t)
	d := e.Start()
	c := d.Clients()
	ctx := context.Background()

	id, err := c.Images.PullImage(ctx, spec(byTag), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("image ref %q is not an image ID", id)
	}
	if id2, err := c.Images.PullImage(ctx, spec(byDigest), nil, nil); err != nil || id2 != id {
		t.Fatalf("pull by digest: %q, %v", id2, err)
	}
	list, err := c.Images.ListImages(ctx, nil)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListImages = %v, %v", list, err)
	}
	img := list[0]
	if img.Id != id || img.RepoTags[0] != byTag || !strings.HasPrefix(img.RepoDigests[0], reg.Host+"/e2e/busybox@sha256:") ||
		img.Uid.GetValue() != 1000 || img.Size < 1<<20 {
		t.Fatalf("image %v", img)
	}
	st, err := c.Images.ImageStatus(ctx, spec(byDigest), true)
	if err != nil || st.Image.GetId() != id {
		t.Fatalf("ImageStatus by digest = %v, %v", st, err)
	}
	harness.MustContain(t, st.Info["info"], `"manifestDigest"`, `"chainID"`)
	fs, err := c.Images.ImageFsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := fs.ImageFilesystems[0]
	if before.UsedBytes.Value < 1<<20 || before.InodesUsed.Value < 20 || before.Timestamp == 0 ||
		before.FsId.Mountpoint != filepath.Join(e.Root, "images") {
		t.Fatalf("ImageFsInfo %v", before)
	}

	d.Stop()
	d = e.Start()
	c = d.Clients()
	st, err = c.Images.ImageStatus(ctx, spec(byTag), false)
	if err != nil || st.Image.GetId() != id {
		t.Fatalf("after restart ImageStatus = %v, %v", st, err)
	}
	fs, _ = c.Images.ImageFsInfo(ctx)
	if got := fs.ImageFilesystems[0]; got.UsedBytes.Value != before.UsedBytes.Value || got.InodesUsed.Value != before.InodesUsed.Value {
		t.Fatalf("ImageFsInfo changed over a restart: %v, was %v", got, before)
	}

	if err := c.Images.RemoveImage(ctx, spec(byTag)); err != nil {
		t.Fatal(err)
	}
	if err := c.Images.RemoveImage(ctx, spec(id)); err != nil {
		t.Fatalf("removing an absent image must succeed: %v", err)
	}
	st, err = c.Images.ImageStatus(ctx, spec(id), false)
	if err != nil || st.Image != nil {
		t.Fatalf("ImageStatus of a removed image = %v, %v; want no image and no error", st, err)
	}
	d.Stop()
	d = e.Start()
	c = d.Clients()
	if list, _ := c.Images.ListImages(ctx, nil); len(list) != 0 {
		t.Fatalf("removed image is back after restart: %v", list)
	}
	fs, _ = c.Images.ImageFsInfo(ctx)
	if fs.ImageFilesystems[0].UsedBytes.Value > 64<<10 {
		t.Fatalf("store still uses %d bytes after removing its only image", fs.ImageFilesystems[0].UsedBytes.Value)
	}
}

// TestImageBadInput checks the status code and message of each bad request,
// and that none of them leaves an image behind.
func TestImageBadInput(t *testing.T) {
	reg := testregistry.Start(t)
	img := testregistry.Random(t, 2, 128<<10, 11)
	byTag, _ := reg.Push(t, "bad/img:1", img)
	private := testregistry.Start(t)
	private.RequireAuth("bob", "hunter2")
	privTag, _ := private.Push(t, "secret:1", testregistry.Random(t, 1, 32<<10, 12))
	corrupt := testregistry.Start(t)
	corruptTag, _ := corrupt.Push(t, "broken:1", img)
	layers, _ := img.Layers()
	dg, _ := layers[0].Digest()
	corrupt.Corrupt(dg.String())
	dead := testregistry.Start(t)
	deadHost := dead.Host
	dead.Close()

	e := harness.NewEnv(t)
	c := e.Start().Clients()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		ref   string
		auth  *criapi.AuthConfig
		code  codes.Code
		words []string
	}{
		{"empty reference", "", nil, codes.InvalidArgument, []string{"empty"}},
		{"unparsable reference", "Bad//Ref:", nil, codes.InvalidArgument, []string{"Bad//Ref:"}},
		{"unknown image", reg.Host + "/bad/img:missing", nil, codes.NotFound, []string{"not found", reg.Host}},
		{"unreachable registry", deadHost + "/any:1", nil, codes.Unavailable, []string{deadHost, "unreachable"}},
		{"no credentials", privTag, nil, codes.Unauthenticated, []string{private.Host, "requires credentials"}},
		{"wrong credentials", privTag, &criapi.AuthConfig{Username: "bob", Password: "nope"}, codes.Unauthenticated, []string{"rejected the credentials"}},
		{"digest mismatch", corruptTag, nil, codes.DataLoss, []string{"digest mismatch", dg.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RawImg.PullImage(ctx, &criapi.PullImageRequest{Image: spec(tc.ref), Auth: tc.auth})
			if status.Code(err) != tc.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.code)
			}
			harness.MustContain(t, status.Convert(err).Message(), tc.words...)
		})
	}
	if list, _ := c.Images.ListImages(ctx, nil); len(list) != 0 {
		t.Fatalf("failed pulls left images: %v", list)
	}
	for _, sub := range []string{"ingest", "tmp"} {
		if left, _ := os.ReadDir(filepath.Join(e.Root, "images", sub)); len(left) != 0 {
			t.Errorf("images/%s holds %d leftovers", sub, len(left))
		}
	}
	if _, err := os.Stat(filepath.Join(e.Root, "images", "blobs", "sha256", strings.TrimPrefix(dg.String(), "sha256:"))); err == nil {
		t.Error("the corrupt blob was committed")
	}
	// The right credentials work, and the good image still pulls.
	if _, err := c.Images.PullImage(ctx, spec(privTag), &criapi.AuthConfig{Username: "bob", Password: "hunter2"}, nil); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	if _, err := c.Images.PullImage(ctx, spec(byTag), nil, nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.RawImg.ImageStatus(ctx, &criapi.ImageStatusRequest{Image: spec("")})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ImageStatus of an empty reference: %v", err)
	}
}
