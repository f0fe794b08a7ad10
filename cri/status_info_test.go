package cri

import (
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/protobuf/proto"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/runtime"
	"github.com/crib-runtime/crib/runtime/image"
	"github.com/crib-runtime/crib/sandbox"
	"github.com/crib-runtime/crib/sandbox/cni"
)

// TestMountsRoundTrip: what ContainerStatus reports is every field of the
// CRI mounts as the config gave them.
func TestMountsRoundTrip(t *testing.T) {
	in := []*criapi.Mount{
		{ContainerPath: "/a", HostPath: "/srv/a", Readonly: true, SelinuxRelabel: true},
		{ContainerPath: "/b", HostPath: "/srv/b", Propagation: criapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER,
			MountOptions: []string{"noexec"}},
		{ContainerPath: "/c", HostPath: "/srv/c", Propagation: criapi.MountPropagation_PROPAGATION_BIDIRECTIONAL,
			RecursiveReadOnly: true, Readonly: true},
		{ContainerPath: "/d", HostPath: "/srv/d",
			UidMappings: []*criapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}},
			GidMappings: []*criapi.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}}},
		{ContainerPath: "/e", Image: &criapi.ImageSpec{Image: "busybox:1"}, ImageSubPath: "bin"},
	}
	out := toCRIMounts(toRecordMounts(in))
	if len(out) != len(in) {
		t.Fatalf("%d mounts back, want %d: %v", len(out), len(in), out)
	}
	for i := range in {
		if !proto.Equal(in[i], out[i]) {
			t.Errorf("mount %d: got %v, want %v", i, out[i], in[i])
		}
	}
	if toCRIMounts(toRecordMounts(nil)) != nil {
		t.Error("no mounts asked for, some reported")
	}
}

func TestRepoDigest(t *testing.T) {
	img := image.Image{ID: "sha256:id", RepoDigests: []string{
		"docker.io/library/busybox@sha256:1", "example.com/mirror/busybox@sha256:1"}}
	for _, tc := range []struct {
		img   image.Image
		asked string
		want  string
	}{
		{img, "busybox:1", "docker.io/library/busybox@sha256:1"},
		{img, "example.com/mirror/busybox:1", "example.com/mirror/busybox@sha256:1"},
		{img, "sha256:id", "docker.io/library/busybox@sha256:1"},
		{img, "other.example/x:1", "docker.io/library/busybox@sha256:1"},
		{image.Image{ID: "sha256:id"}, "busybox:1", "sha256:id"},
	} {
		if got := repoDigest(tc.img, tc.asked); got != tc.want {
			t.Errorf("repoDigest(%v, %q) = %q, want %q", tc.img.RepoDigests, tc.asked, got, tc.want)
		}
	}
	// A record from before the digest was kept reports the ID, as before.
	st := runtime.State{Container: runtime.Container{ImageRef: "sha256:id"}}
	if got := imageRef(st); got != "sha256:id" {
		t.Errorf("imageRef of a record without a digest = %q", got)
	}
}

// decode marshals v as the verbose info does and decodes it as crictl does.
func decode(t *testing.T, v any) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(marshalInfo(v)), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestContainerInfo(t *testing.T) {
	st := runtime.State{Container: runtime.Container{ID: "c", SandboxID: "p", ImageRef: "sha256:id",
		Spec: json.RawMessage(`{"ociVersion":"1.2.0","process":{"args":["sleep","1"]}}`), Cgroup: "/pods/p/c"},
		Status: runtime.StatusRunning, Pid: 4242}
	info := decode(t, toContainerInfo(st))
	spec, _ := info["runtimeSpec"].(map[string]any)
	if info["sandboxID"] != "p" || info["pid"] != 4242.0 || info["state"] != "RUNNING" || spec["ociVersion"] != "1.2.0" ||
		info["cgroupsPath"] != "/pods/p/c" {
		t.Errorf("container info = %v", info)
	}
	st.Status, st.Pid = runtime.StatusCreated, 0
	if info := decode(t, toContainerInfo(st)); info["state"] != "CREATED" || info["pid"] != 0.0 {
		t.Errorf("created container info = %v", info)
	}
}

func TestSandboxInfo(t *testing.T) {
	p := &sandbox.Pod{ID: "p", Name: "web", Namespace: "ns", UID: "u", Attempt: 1, Hostname: "web", LogDir: "/var/log/pods/u",
		State: sandbox.StateReady, Network: sandbox.NetworkAttached, NetNS: "/run/crib/p/ns/net", IPCNS: "/run/crib/p/ns/ipc",
		CgroupParent: "/kubepods/podu", Cgroup: "/kubepods/podu/p", SharePID: true, PausePID: 77,
		PortMappings: []cni.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "udp"}},
		Sysctls:      map[string]string{"net.ipv4.ip_forward": "1"}}
	info := decode(t, toSandboxInfo(p))
	if info["pid"] != 77.0 || info["state"] != "READY" || info["network"] != "attached" {
		t.Errorf("ready pod info = %v", info)
	}
	ns, _ := info["namespaces"].(map[string]any)
	if ns["network"] != p.NetNS || ns["pid"] != "/proc/77/ns/pid" || ns["uts"] != "" {
		t.Errorf("pod info namespaces = %v", ns)
	}
	cfg := toSandboxInfo(p).Config
	want := &criapi.PodSandboxConfig{
		Metadata: &criapi.PodSandboxMetadata{Name: "web", Namespace: "ns", Uid: "u", Attempt: 1},
		Hostname: "web", LogDirectory: "/var/log/pods/u",
		PortMappings: []*criapi.PortMapping{{Protocol: criapi.Protocol_UDP, ContainerPort: 80, HostPort: 8080}},
		Linux: &criapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/podu", Sysctls: p.Sysctls,
			SecurityContext: &criapi.LinuxSandboxSecurityContext{NamespaceOptions: &criapi.NamespaceOption{
				Network: criapi.NamespaceMode_POD, Ipc: criapi.NamespaceMode_POD, Pid: criapi.NamespaceMode_POD}}},
	}
	if !proto.Equal(cfg, want) {
		t.Errorf("pod info config = %v, want %v", cfg, want)
	}
	// containerd's encoding of the config: the CRI message's field names.
	if !strings.Contains(marshalInfo(toSandboxInfo(p)), `"log_directory":"/var/log/pods/u"`) {
		t.Errorf("pod info config encoding: %s", marshalInfo(toSandboxInfo(p)))
	}
	// Stopped, the pause process is gone.
	p.State = sandbox.StateNotReady
	if info := decode(t, toSandboxInfo(p)); info["pid"] != 0.0 || info["state"] != "NOTREADY" {
		t.Errorf("stopped pod info = %v", info)
	}
}

func TestImageInfo(t *testing.T) {
	img := image.Image{ID: "sha256:id", Layers: []image.Layer{{ChainID: "sha256:bottom"}, {ChainID: "sha256:top"}}}
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{User: "1000"}}
	info := decode(t, toImageInfo(img, cfg))
	ispec, _ := info["imageSpec"].(map[string]any)
	icfg, _ := ispec["config"].(map[string]any)
	if info["chainID"] != "sha256:top" || info["id"] != "sha256:id" || ispec["os"] != "linux" || icfg["User"] != "1000" {
		t.Errorf("image info = %v", info)
	}
}

func TestShownImage(t *testing.T) {
	img := image.Image{ID: "sha256:abc", RepoTags: []string{"registry.k8s.io/e2e-test-images/agnhost:2.66.1", "agnhost:latest"}}
	for _, tc := range []struct {
		img   image.Image
		asked *criapi.ImageSpec
		want  string
	}{
		// The kubelet: an image ID, and the pod spec's image.
		{img, &criapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "agnhost:latest"}, "agnhost:latest"},
		// crictl: the name it pulled.
		{img, &criapi.ImageSpec{Image: "agnhost:latest"}, "agnhost:latest"},
		// An ID alone, with or without its algorithm: the first tag.
		{img, &criapi.ImageSpec{Image: "sha256:abc"}, "registry.k8s.io/e2e-test-images/agnhost:2.66.1"},
		{img, &criapi.ImageSpec{Image: "abc"}, "registry.k8s.io/e2e-test-images/agnhost:2.66.1"},
		// An untagged image by ID: the ID.
		{image.Image{ID: "sha256:abc"}, &criapi.ImageSpec{Image: "sha256:abc"}, "sha256:abc"},
	} {
		if got := shownImage(tc.img, tc.asked); got != tc.want {
			t.Errorf("shownImage(%v, %v) = %q, want %q", tc.img.RepoTags, tc.asked, got, tc.want)
		}
	}
}
