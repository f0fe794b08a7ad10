package runtime

import (
	"context"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestLayersInUseImageVolumes: the layers of a container's image volumes
// are pinned like its rootfs's, across a daemon restart, until removal.
func TestLayersInUseImageVolumes(t *testing.T) {
	m, shim, root := newWorld(t)
	ctx := context.Background()
	c := newContainer("pod", "vol")
	if _, err := m.Create(ctx, c, CreateOptions{Spec: &specs.Spec{Root: &specs.Root{}}, Layers: []string{"/rootfs-layer"},
		VolumeLayers: []string{"/vol-top", "/vol-base"}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"/rootfs-layer", "/vol-base", "/vol-top"}
	check := func(m *Manager, when string) {
		t.Helper()
		got := m.LayersInUse()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: LayersInUse = %v, want %v", when, got, want)
		}
	}
	check(m, "created")
	m2, err := Open(root, shims{"pod": shim})
	if err != nil {
		t.Fatal(err)
	}
	check(m2, "after a restart")
	if _, err := m2.Remove(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	m2.Drain()
	if got := m2.LayersInUse(); len(got) != 0 {
		t.Errorf("after remove: LayersInUse = %v", got)
	}
}
