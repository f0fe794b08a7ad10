package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// importCmd runs `crib image import` against the env's store (its config
// names the root) with the archive in file, or on stdin when stdin is set.
func importCmd(t *testing.T, e *harness.Env, file string, stdin []byte) (string, error) {
	t.Helper()
	arg := file
	if stdin != nil {
		arg = "-"
	}
	cmd := exec.Command(harness.Binary(), "image", "import", "--config", e.ConfPath, arg)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	t.Logf("crib image import %s:\n%s", arg, out)
	return string(out), err
}

func writeArchive(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// listed returns the tags ListImages gives.
func listed(t *testing.T, c harness.Clients) []string {
	t.Helper()
	list, err := c.Images.ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, img := range list {
		tags = append(tags, img.RepoTags...)
	}
	return tags
}

// runImported runs a container of the image in a pod of its own and
// returns what `id -u` prints in it, then removes the pod. Nothing pulls:
// no registry serves these names.
func runImported(t *testing.T, w *podWorld, image string) string {
	t.Helper()
	ctx := context.Background()
	w.image = image
	pod := w.podConfig("imported", criapi.NamespaceMode_CONTAINER)
	podID, err := w.c.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	removed := false
	remove := func() {
		if !removed {
			removed = true
			_ = w.c.Runtime.StopPodSandbox(ctx, podID)
			_ = w.c.Runtime.RemovePodSandbox(ctx, podID)
		}
	}
	t.Cleanup(remove) // on failure; the daemon may be another by then
	id := w.container(t, podID, pod, "imported", "sleep", "3600")
	resp, err := w.c.RawRt.ExecSync(ctx, &criapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"id", "-u"}, Timeout: 20})
	if err != nil || resp.ExitCode != 0 {
		t.Fatalf("exec in a container of %s: %v, %v", image, err, resp)
	}
	remove()
	return strings.TrimSpace(string(resp.Stdout))
}

// TestImageImport: `crib image import` beside a running daemon, of docker
// save's format from a file and of an OCI archive on stdin (as kind load
// docker-image feeds one), then with the daemon stopped. The daemon lists
// each image at once by its normalised names and runs containers of them
// with no registry. A bad archive fails and changes nothing.
func TestImageImport(t *testing.T) {
	w := startPodWorld(t, nil)
	const (
		dockerTag = "docker.io/e2e/imported:docker"
		ociTag    = "registry.example/e2e/imported:oci"
		offTag    = "docker.io/library/imported:offline"
	)
	docker := writeArchive(t, "docker.tar", testregistry.DockerSave(t, testregistry.Saved{Tags: []string{"e2e/imported:docker"}, Image: testregistry.Busybox(t, "2000")}))
	oci := testregistry.TarDir(t, testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{
		Image: testregistry.Busybox(t, "1000"), Annotations: map[string]string{"io.containerd.image.name": ociTag, "org.opencontainers.image.ref.name": "oci"},
	}), true)

	if out, err := importCmd(t, w.e, docker, nil); err != nil || !strings.Contains(out, dockerTag) {
		t.Fatalf("import docker save: %v", err)
	}
	if out, err := importCmd(t, w.e, "", oci); err != nil || !strings.Contains(out, ociTag) {
		t.Fatalf("import OCI archive from stdin: %v", err)
	}
	if tags := listed(t, w.c); !slices.Contains(tags, dockerTag) || !slices.Contains(tags, ociTag) {
		t.Fatalf("ListImages gives %v, without the imported images", tags)
	}
	if uid := runImported(t, w, "e2e/imported:docker"); uid != "2000" {
		t.Fatalf("the docker save image runs as %s, want its user 2000", uid)
	}
	if uid := runImported(t, w, ociTag); uid != "1000" {
		t.Fatalf("the OCI image runs as %s, want its user 1000", uid)
	}

	// A truncated archive: refused, and the store is as it was.
	before := listed(t, w.c)
	whole, err := os.ReadFile(docker)
	if err != nil {
		t.Fatal(err)
	}
	out, err := importCmd(t, w.e, "", whole[:len(whole)/2])
	if err == nil || !strings.Contains(out, "crib image import:") {
		t.Fatalf("a truncated archive was imported: %v", err)
	}
	if after := listed(t, w.c); !slices.Equal(after, before) {
		t.Fatalf("a failed import changed the images: %v, was %v", after, before)
	}

	// With the daemon stopped (as while a node image is built): the
	// daemon finds the image when it starts.
	w.d.Stop()
	offline := writeArchive(t, "offline.tar.gz", testregistry.Gzip(t, testregistry.DockerSave(t,
		testregistry.Saved{Tags: []string{"imported:offline"}, Image: testregistry.Busybox(t, "4242")})))
	if _, err := importCmd(t, w.e, offline, nil); err != nil {
		t.Fatalf("import with the daemon stopped: %v", err)
	}
	w.d = w.e.Start()
	w.c = w.d.Clients()
	if tags := listed(t, w.c); !slices.Contains(tags, offTag) || !slices.Contains(tags, dockerTag) {
		t.Fatalf("after a restart ListImages gives %v", tags)
	}
	if uid := runImported(t, w, "imported:offline"); uid != "4242" {
		t.Fatalf("the image imported offline runs as %s, want 4242", uid)
	}
	if n := harness.CheckImageStore(t, w.e.Root); n != 3 {
		t.Fatalf("the store holds %d images, want 3", n)
	}
}
