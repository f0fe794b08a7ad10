package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRemoveImageInUse regresses issue 12 #6: RemoveImage of an image that
// containers use deleted its layers, emptying a running container's root
// filesystem. The name goes at once; the layers stay while any container
// record (created, running or exited) uses them, across a daemon restart,
// and go with the last of those containers, whether RemoveContainer or
// RemovePodSandbox removes it.
func TestRemoveImageInUse(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	layersDir := filepath.Join(w.e.Root, "images", "layers", "sha256")
	blobsDir := filepath.Join(w.e.Root, "images", "blobs", "sha256")
	pulled := dirEntries(t, layersDir)
	if len(pulled) == 0 {
		t.Fatal("no layers after the pull")
	}

	pod, podID := w.runPod(t, "inuse", criapi.NamespaceMode_CONTAINER)
	running := w.container(t, podID, pod, "running", "sleep", "3600")
	exited := w.container(t, podID, pod, "exited", "true")
	waitFor(t, func() bool {
		cs, err := w.c.Runtime.ContainerStatus(ctx, exited, false)
		return err == nil && cs.Status.State == criapi.ContainerState_CONTAINER_EXITED
	}, "the exited container to exit")
	created, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "created"}, Image: &criapi.ImageSpec{Image: w.image},
		Command: []string{"sleep", "3600"}}, pod)
	if err != nil {
		t.Fatal(err)
	}
	// A second pod whose container goes with the pod.
	pod2, pod2ID := w.runPod(t, "inuse2", criapi.NamespaceMode_CONTAINER)
	w.container(t, pod2ID, pod2, "other", "sleep", "3600")

	img, err := w.c.Images.ImageStatus(ctx, spec(w.image), false)
	if err != nil || img.Image == nil {
		t.Fatalf("image status before removal: %v, %v", img, err)
	}
	imageID := img.Image.Id
	if err := w.c.Images.RemoveImage(ctx, spec(w.image)); err != nil {
		t.Fatalf("remove an image containers use: %v", err)
	}
	checkImageGone := func(when string) {
		t.Helper()
		for _, ref := range []string{w.image, imageID} {
			if st, err := w.c.Images.ImageStatus(ctx, spec(ref), false); err != nil || st.Image != nil {
				t.Errorf("%s: ImageStatus(%s) = %v, %v; want no image", when, ref, st.GetImage(), err)
			}
		}
		list, err := w.c.Images.ListImages(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range list {
			if i.Id == imageID {
				t.Errorf("%s: ListImages still shows %s %v", when, i.Id, i.RepoTags)
			}
		}
	}
	checkLayers := func(when string) {
		t.Helper()
		if got := dirEntries(t, layersDir); !slices.Equal(got, pulled) {
			t.Fatalf("%s: layers %v, want %v kept for the containers", when, got, pulled)
		}
	}
	checkImageGone("after RemoveImage")
	// GC that would empty the rootfs does so at once; give a background one time.
	time.Sleep(500 * time.Millisecond)
	checkLayers("after RemoveImage")
	readRootfs(t, w, running, "running container after RemoveImage")

	// A container created before the removal starts after it.
	if err := w.c.Runtime.StartContainer(ctx, created); err != nil {
		t.Fatalf("start a container whose image was removed: %v", err)
	}
	readRootfs(t, w, created, "container started after RemoveImage")

	// The pins are the container records: a restart keeps them.
	w.d.Stop()
	w.d = w.e.Start()
	w.c = w.d.Clients()
	checkImageGone("after a restart")
	checkLayers("after a restart")
	readRootfs(t, w, running, "running container after a restart")

	// A pod removal takes its container, not the others' layers.
	if err := w.c.Runtime.StopPodSandbox(ctx, pod2ID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, pod2ID); err != nil {
		t.Fatal(err)
	}
	checkLayers("after removing one pod")
	for _, id := range []string{running, created} {
		if err := w.c.Runtime.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if err := w.c.Runtime.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		checkLayers("with an exited container left")
	}
	if err := w.c.Runtime.RemoveContainer(ctx, exited); err != nil {
		t.Fatal(err)
	}
	if left := dirEntries(t, layersDir); len(left) != 0 {
		t.Fatalf("layers %v left after the last container that used them was removed", left)
	}
	if left := dirEntries(t, blobsDir); len(left) != 0 {
		t.Fatalf("blobs %v left after the image and its containers went", left)
	}

	// Pulled again while containers hold the layers, the image shares them
	// and keeps them after its containers go; and the last user removed
	// with its pod releases them too.
	if _, err := w.c.Images.PullImage(ctx, spec(w.image), nil, nil); err != nil {
		t.Fatal(err)
	}
	again := w.container(t, podID, pod, "again", "sleep", "3600")
	if err := w.c.Images.RemoveImage(ctx, spec(w.image)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.c.Images.PullImage(ctx, spec(w.image), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemoveContainer(ctx, again); err != nil {
		t.Fatal(err)
	}
	checkLayers("with the image pulled again")
	again = w.container(t, podID, pod, "again2", "sleep", "3600")
	if err := w.c.Images.RemoveImage(ctx, spec(w.image)); err != nil {
		t.Fatal(err)
	}
	checkLayers("after the second RemoveImage")
	readRootfs(t, w, again, "container of the re-pulled image")
	if err := w.c.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if left := dirEntries(t, layersDir); len(left) != 0 {
		t.Fatalf("layers %v left after RemovePodSandbox took their last container", left)
	}
}

// readRootfs checks that files of the image's layer are there and readable
// in a running container.
func readRootfs(t *testing.T, w *podWorld, id, what string) {
	t.Helper()
	ctx := context.Background()
	stdout, stderr, err := w.c.Runtime.ExecSync(ctx, id, []string{"head", "-c", "4", "/bin/busybox"}, 10*time.Second)
	if err != nil || string(stdout) != "\x7fELF" {
		t.Fatalf("%s: head -c 4 /bin/busybox = %q, %q, %v", what, stdout, stderr, err)
	}
	stdout, stderr, err = w.c.Runtime.ExecSync(ctx, id, []string{"cat", "/etc/passwd"}, 10*time.Second)
	if err != nil || !strings.Contains(string(stdout), "nobody:") {
		t.Fatalf("%s: cat /etc/passwd = %q, %q, %v", what, stdout, stderr, err)
	}
}

func dirEntries(t *testing.T, dir string) []string {
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
