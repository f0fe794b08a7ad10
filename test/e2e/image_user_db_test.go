package e2e

import (
	"archive/tar"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// hostOnlyUser returns a user name in the host's /etc/passwd that the test
// busybox image (root and nobody) lacks.
func hostOnlyUser(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		name, _, _ := strings.Cut(line, ":")
		if name != "" && name != "root" && name != "nobody" && !strings.HasPrefix(name, "#") {
			return name
		}
	}
	t.Fatal("the host's /etc/passwd has no user besides root and nobody")
	return ""
}

// TestImageEtcSymlinkNotFollowedToHost regresses CreateContainer resolving
// a run_as_username in the host's /etc/passwd: an image whose top layer is
// "etc -> /etc" made the daemon read the host's file, so a user only the
// host has was accepted. It must be refused as not in the image.
func TestImageEtcSymlinkNotFollowedToHost(t *testing.T) {
	ctx := context.Background()
	name := hostOnlyUser(t)
	p := startHostPodIn(t, harness.NewEnv(t), nil, "sleep", "3600")

	reg := testregistry.Start(t)
	img, err := mutate.AppendLayers(testregistry.Busybox(t, "0"),
		testregistry.Layer(t, []testregistry.File{{Name: "etc", Typ: tar.TypeSymlink, Link: "/etc"}}))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := reg.Push(t, "etclink:1", img)
	if _, err := p.c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}
	id, err := p.c.Runtime.CreateContainer(ctx, p.podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: "etclink"}, Image: &criapi.ImageSpec{Image: ref}, Command: []string{"true"},
		Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{
			RunAsUsername:    name,
			NamespaceOptions: &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_CONTAINER}}},
	}, p.pod)
	if err == nil {
		_ = p.c.Runtime.RemoveContainer(ctx, id)
		t.Fatalf("user %q, known only to the host, was accepted for an image with etc -> /etc", name)
	}
	harness.MustContain(t, err.Error(), name, "not found")
}
