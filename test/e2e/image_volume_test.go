package e2e

import (
	"archive/tar"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/testregistry"
)

// TestImageVolume: a CRI mount of an image (KEP-4639) holds the image's
// merged files, read-only (EROFS) but executable, with image_sub_path
// mounting one directory of it; ContainerStatus reports the image and its
// ID; RemoveImage of the volume's image keeps its layers for the container
// and they go with it; a missing image, a writable image mount and a sub
// path that is missing, not a directory or a symlink out of the image are
// refused at CreateContainer.
func TestImageVolume(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	layersDir := filepath.Join(w.e.Root, "images", "layers", "sha256")
	before := dirEntries(t, layersDir)

	dir := func(name string) testregistry.File {
		return testregistry.File{Name: name, Mode: 0o755, Typ: tar.TypeDir}
	}
	file := func(name, data string) testregistry.File {
		return testregistry.File{Name: name, Mode: 0o644, Data: []byte(data)}
	}
	img := testregistry.Image(t, [][]testregistry.File{
		{dir("data/"), file("data/hello", "hello\n"), file("data/over", "base\n"), dir("data/gone/")},
		{dir("data/"), file("data/over", "top\n"), dir("data/sub/"), file("data/sub/f", "sub\n"),
			file("data/.wh.gone", ""), file("notdir", "x"),
			{Name: "hostetc", Typ: tar.TypeSymlink, Link: "/../../../../../../etc"}},
	})
	ref, _ := w.reg.Push(t, "e2e/volume:1", img)
	ref = strings.Replace(ref, w.reg.Host, w.regHost, 1)
	volID, err := w.c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	volLayers := dirEntries(t, layersDir)
	if len(volLayers) != len(before)+2 {
		t.Fatalf("layers %v after pulling a two-layer image onto %v", volLayers, before)
	}

	pod, podID := w.runPod(t, "imagevolume", criapi.NamespaceMode_CONTAINER)
	create := func(name string, mounts ...*criapi.Mount) (string, error) {
		return w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"sleep", "3600"}, Mounts: mounts}, pod)
	}
	vol := func(path, image, sub string) *criapi.Mount {
		return &criapi.Mount{ContainerPath: path, Readonly: true, Image: &criapi.ImageSpec{Image: image}, ImageSubPath: sub}
	}
	id, err := create("vol", vol("/mnt/vol", volID, ""), vol("/mnt/sub", volID, "data/sub"), vol("/mnt/bb", w.image, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	exec := func(cmd ...string) (string, error) {
		stdout, stderr, err := w.c.Runtime.ExecSync(ctx, id, cmd, 10*time.Second)
		return string(stdout) + string(stderr), err
	}
	read := func(when string) {
		t.Helper()
		out, err := exec("cat", "/mnt/vol/data/hello", "/mnt/vol/data/over", "/mnt/sub/f")
		if err != nil || out != "hello\ntop\nsub\n" {
			t.Fatalf("%s: the volume's files: %q, %v", when, out, err)
		}
	}
	read("started")
	for _, p := range []string{"/mnt/vol/x", "/mnt/vol/data/over", "/mnt/sub/y"} {
		if out, err := exec("touch", p); err == nil || !strings.Contains(out, "Read-only file system") {
			t.Errorf("touch %s: %q, %v; want EROFS", p, out, err)
		}
	}
	if out, err := exec("ls", "/mnt/vol/data"); err != nil || out != "hello\nover\nsub\n" {
		t.Errorf("ls /mnt/vol/data: %q, %v; want the whiteout to hide gone", out, err)
	}
	if out, err := exec("ls", "/mnt/sub"); err != nil || out != "f\n" {
		t.Errorf("ls /mnt/sub: %q, %v; want data/sub of the image only", out, err)
	}
	// Executable: a binary of an image volume runs (critest checks it).
	if out, err := exec("/mnt/bb/busybox", "echo", "ran"); err != nil || out != "ran\n" {
		t.Errorf("run a binary from an image volume: %q, %v", out, err)
	}
	cs, err := w.c.Runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range cs.Status.Mounts {
		got = append(got, m.ContainerPath+" "+m.GetImage().GetImage()+" "+m.GetImage().GetImageRef()+" "+m.ImageSubPath)
	}
	bbID, err := w.c.Images.ImageStatus(ctx, &criapi.ImageSpec{Image: w.image}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/mnt/vol " + volID + " " + volID + " ", "/mnt/sub " + volID + " " + volID + " data/sub",
		"/mnt/bb " + w.image + " " + bbID.Image.Id + " bin"}
	if !slices.Equal(got, want) {
		t.Errorf("ContainerStatus mounts:\n%q\nwant\n%q", got, want)
	}

	// The container's record pins the volume's layers past RemoveImage.
	if err := w.c.Images.RemoveImage(ctx, &criapi.ImageSpec{Image: volID}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := dirEntries(t, layersDir); !slices.Equal(got, volLayers) {
		t.Fatalf("layers %v after RemoveImage, want %v kept for the container", got, volLayers)
	}
	read("after RemoveImage")

	// Refused at create, each with a clear error.
	for _, tc := range []struct {
		name     string
		mount    *criapi.Mount
		code     codes.Code
		contains string
	}{
		{"removed image", vol("/mnt/vol", volID, ""), codes.NotFound, "is not present"},
		{"unknown image", vol("/mnt/vol", "sha256:"+strings.Repeat("0", 64), ""), codes.NotFound, "is not present"},
		{"writable", &criapi.Mount{ContainerPath: "/mnt/vol", Image: &criapi.ImageSpec{Image: w.image}}, codes.InvalidArgument, "readonly must be set"},
		{"missing sub path", vol("/mnt/vol", w.image, "nope"), codes.InvalidArgument, `image_sub_path "nope" does not exist`},
		{"sub path not a directory", vol("/mnt/vol", w.image, "etc/passwd"), codes.InvalidArgument, "is not a directory"},
		{"climbing sub path", vol("/mnt/vol", w.image, "../etc"), codes.InvalidArgument, `without ".."`},
	} {
		if _, err := create("bad-"+strings.ReplaceAll(tc.name, " ", "-"), tc.mount); status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: %v, want %s containing %q", tc.name, err, tc.code, tc.contains)
		}
	}
	// The symlink to the host's /etc (which exists) is not followed out.
	if _, err := w.c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := create("hostetc", vol("/mnt/vol", volID, "hostetc")); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("sub path through a symlink to the host's /etc: %v, want InvalidArgument: does not exist", err)
	}
	if err := w.c.Images.RemoveImage(ctx, &criapi.ImageSpec{Image: volID}); err != nil {
		t.Fatal(err)
	}

	// The layers go with the container.
	if err := w.c.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return slices.Equal(dirEntries(t, layersDir), before) }, "the volume's layers to go with the container")
}
