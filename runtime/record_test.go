package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/internal/statefile"
)

// v1Record is a container.json as a daemon of record version 1 wrote it:
// the spec's bind mounts, the pod's files among them, under "mounts".
const v1Record = `{"version":1,"id":"%ID%","sandboxID":"%POD%","name":"web","attempt":0,
"image":"busybox","imageRef":"sha256:abc","stopSignal":15,"createdAt":"2026-01-02T03:04:05Z",
"mounts":[
 {"destination":"/etc/hostname","type":"bind","source":"/run/crib/pods/%POD%/hostname","options":["rbind","rprivate","rw"]},
 {"destination":"/etc/hosts","type":"bind","source":"/run/crib/pods/%POD%/hosts","options":["rbind","rprivate","rw"]},
 {"destination":"/etc/resolv.conf","type":"bind","source":"/run/crib/pods/%POD%/resolv.conf","options":["rbind","rprivate","ro"]},
 {"destination":"/dev/shm","type":"bind","source":"/dev/shm","options":["rbind","rprivate","rw"]},
 {"destination":"/etc/hosts","type":"bind","source":"/var/lib/kubelet/pods/u/etc-hosts","options":["rbind","rprivate","rw"]},
 {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","rslave","ro","noexec"]},
 {"destination":"/shared","type":"bind","source":"/srv/shared","options":["rbind","rshared","rw"]}
],
"cgroup":"/pods/x","spec":{"ociVersion":"1.2.0"},"layers":["/l"]}`

// TestOpenReadsVersion1Records: a record written before the requested
// mounts were kept is still read, its mounts recovered from the spec's
// bind mounts without the pod's files (a kubelet-made /etc/hosts stays:
// it was asked for).
func TestOpenReadsVersion1Records(t *testing.T) {
	root := t.TempDir()
	id, pod := NewID(), NewID()
	dir := filepath.Join(root, "containers", id)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	rec := strings.NewReplacer("%ID%", id, "%POD%", pod).Replace(v1Record)
	if err := os.WriteFile(filepath.Join(dir, "container.json"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(root, shims{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.get(id)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/u/etc-hosts", Propagation: "rprivate"},
		{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, Propagation: "rslave", MountOptions: []string{"noexec"}},
		{ContainerPath: "/shared", HostPath: "/srv/shared", Propagation: "rshared"},
	}
	if diff := cmp.Diff(want, c.Mounts); diff != "" {
		t.Errorf("mounts of a version 1 record (-want +got):\n%s", diff)
	}
	if c.Version != recordVersion || c.ImageRef != "sha256:abc" || c.RepoDigest != "" || c.Cgroup != "/pods/x" {
		t.Errorf("version 1 record read as %+v", c)
	}
}

func TestOpenRefusesUnknownRecordVersion(t *testing.T) {
	root := t.TempDir()
	id := NewID()
	path := filepath.Join(root, "containers", id, "container.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"version":99,"id":"`+id+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(root, shims{}); !errors.Is(err, statefile.ErrVersion) || !strings.Contains(err.Error(), id) {
		t.Fatalf("Open with a version 99 record = %v, want ErrVersion naming %s", err, id)
	}
}

// TestRecordKeepsRequestedMounts: the requested mounts and the repo digest
// survive a daemon restart.
func TestRecordKeepsRequestedMounts(t *testing.T) {
	m, shim, root := newWorld(t)
	c := newContainer("pod", "web")
	c.RepoDigest = "example.com/busybox@sha256:def"
	c.Mounts = []Mount{{ContainerPath: "/data", HostPath: "/srv", Readonly: true, SelinuxRelabel: true, Propagation: "rslave",
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}}}
	create(t, m, c)
	m2, err := Open(root, shims{"pod": shim})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.get(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.Mounts, got.Mounts); diff != "" || got.RepoDigest != c.RepoDigest {
		t.Errorf("after reopen: repo digest %q, mounts (-want +got):\n%s", got.RepoDigest, diff)
	}
}

// TestUpdateRunningUpdatesRecordedSpec: the recorded spec (a verbose
// ContainerStatus's runtimeSpec) follows an update of a running container.
func TestUpdateRunningUpdatesRecordedSpec(t *testing.T) {
	m, _, _ := newWorld(t)
	c := startNew(t, m, "web")
	if err := m.UpdateResources(context.Background(), c.ID, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(9))}}); err != nil {
		t.Fatal(err)
	}
	got, err := m.get(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got.Spec), `"pids":{"limit":9}`) {
		t.Errorf("recorded spec after update: %s", got.Spec)
	}
}
