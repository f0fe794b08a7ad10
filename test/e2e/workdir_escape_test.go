package e2e

import (
	"context"
	"os"
	"strconv"
	"testing"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestHostileWorkingDirIsRefused: a pod that shares its pid namespace
// (pid 1 is the pause process) and containers whose working_dir goes
// through a /proc magic link: /proc/1/root/... (the host's / while the
// pause process lives there), /proc/self/root/.., /proc/self/fd/N/... Each
// start fails, and nothing is created on the host.
func TestHostileWorkingDirIsRefused(t *testing.T) {
	w := newPodWorld(t)
	ctx := context.Background()
	pod, podID := w.runPod(t, "hostile-workdir", criapi.NamespaceMode_POD)
	host := t.TempDir()
	dirs := []string{"/proc/1/root" + host + "/made", "/proc/self/root/../made"}
	for n := 0; n <= 20; n++ {
		dirs = append(dirs, "/proc/self/fd/"+strconv.Itoa(n)+"/../made")
	}
	for i, dir := range dirs {
		id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata:   &criapi.ContainerMetadata{Name: "hostile-" + strconv.Itoa(i)},
			Image:      &criapi.ImageSpec{Image: w.image},
			Command:    []string{"sh", "-c", "ls"},
			WorkingDir: dir,
		}, pod)
		if err != nil {
			t.Fatalf("create with working_dir %s: %v", dir, err)
		}
		if err := w.c.Runtime.StartContainer(ctx, id); err == nil {
			t.Errorf("working_dir %s: started", dir)
		}
	}
	entries, err := os.ReadDir(host)
	if err != nil || len(entries) != 0 {
		t.Errorf("the host directory %s holds %v (%v), want nothing", host, entries, err)
	}
}
