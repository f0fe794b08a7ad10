package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRecursiveReadOnlyMount: Status advertises recursive read-only mounts
// on the default handler; a host directory holding a tmpfs submount,
// mounted recursive_read_only, is read-only all the way down, while the
// same directory mounted plain readonly leaves the submount writable; the
// combinations the CRI forbids are refused with InvalidArgument.
func TestRecursiveReadOnlyMount(t *testing.T) {
	ctx := context.Background()
	host := t.TempDir()
	sub := filepath.Join(host, "tmpfs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", sub, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after the pod is gone.
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", sub, err)
		}
	})
	w := newPodWorld(t)

	st, err := w.c.RawRt.Status(ctx, &criapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var advertised bool
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() == "" {
			advertised = h.GetFeatures().GetRecursiveReadOnlyMounts()
		}
	}
	if !advertised {
		t.Errorf("Status handlers %v: the default handler does not advertise recursive read-only mounts", st.GetRuntimeHandlers())
	}

	pod, podID := w.runPod(t, "rro", criapi.NamespaceMode_CONTAINER)
	create := func(name string, mounts ...*criapi.Mount) (string, error) {
		return w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"sleep", "3600"}, Mounts: mounts,
		}, pod)
	}
	id, err := create("rro",
		&criapi.Mount{ContainerPath: "/rro", HostPath: host, Readonly: true, RecursiveReadOnly: true},
		&criapi.Mount{ContainerPath: "/ro", HostPath: host, Readonly: true})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	try := `for f in /rro/top /rro/tmpfs/a /ro/top /ro/tmpfs/b; do
  if out=$(touch $f 2>&1); then echo "$f writable"; else echo "$f $out"; fi
done`
	out, _ := w.execOut(t, id, try)
	t.Logf("touch:\n%s", out)
	got := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(line, " ")
		got[k] = v
	}
	for f, want := range map[string]string{
		"/rro/top": "Read-only file system", "/rro/tmpfs/a": "Read-only file system",
		"/ro/top": "Read-only file system", "/ro/tmpfs/b": "writable",
	} {
		if !strings.Contains(got[f], want) {
			t.Errorf("touch %s: %q, want %q", f, got[f], want)
		}
	}
	if _, err := os.Stat(filepath.Join(sub, "a")); !os.IsNotExist(err) {
		t.Errorf("the rro mount's submount took a write: %v", err)
	}

	for name, m := range map[string]*criapi.Mount{
		"not-readonly": {ContainerPath: "/rro", HostPath: host, RecursiveReadOnly: true},
		"host-to-container": {ContainerPath: "/rro", HostPath: host, Readonly: true, RecursiveReadOnly: true,
			Propagation: criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
	} {
		if _, err := create(name, m); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "recursive_read_only") {
			t.Errorf("%s: CreateContainer = %v, want InvalidArgument about recursive_read_only", name, err)
		}
	}
}
