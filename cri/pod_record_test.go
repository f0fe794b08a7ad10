package cri

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/testing/protocmp"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/cri/spec"
	"github.com/crib-runtime/crib/sandbox"
)

// tamperedSandboxConfig is a CreateContainer request's copy of the pod's
// config as a hostile client might send it: everything the pod did not
// decide.
func tamperedSandboxConfig() *criapi.PodSandboxConfig {
	return &criapi.PodSandboxConfig{
		Metadata:     &criapi.PodSandboxMetadata{Name: "other", Namespace: "kube-system", Uid: "u2"},
		Hostname:     "evil",
		LogDirectory: "/etc",
		Annotations:  map[string]string{"rdt.resources.beta.kubernetes.io/pod": "gold"},
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: "/",
			Sysctls:      map[string]string{"kernel.shm_rmid_forced": "1"},
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				Privileged: true,
				NamespaceOptions: &criapi.NamespaceOption{
					Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_NODE, Ipc: criapi.NamespaceMode_NODE,
				},
				SelinuxOptions: &criapi.SELinuxOption{Type: "spc_t"},
			},
		},
	}
}

// TestSandboxConfigFromRecord: cri/spec sees the pod's record, whatever the
// request's copy of the pod's config says.
func TestSandboxConfigFromRecord(t *testing.T) {
	rec := &sandbox.Pod{
		ID: "p1", Name: "web", Namespace: "default", UID: "u1", Attempt: 2, Hostname: "web-0", LogDir: "/var/log/pods/x",
		Annotations: map[string]string{"a": "b"}, Labels: map[string]string{"app": "web"}, CgroupParent: "/kubepods/pod1",
		Sysctls: map[string]string{"net.core.somaxconn": "1024"}, NetNS: "/n", IPCNS: "/i", UTSNS: "/u",
		SELinux: sandbox.SELinuxOptions{Level: "s0:c1,c2"},
	}
	want := &criapi.PodSandboxConfig{
		Metadata: &criapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1", Attempt: 2},
		Hostname: "web-0", LogDirectory: "/var/log/pods/x",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"},
		Linux: &criapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/pod1",
			Sysctls:      map[string]string{"net.core.somaxconn": "1024"},
			SecurityContext: &criapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &criapi.NamespaceOption{
					Network: criapi.NamespaceMode_POD, Pid: criapi.NamespaceMode_CONTAINER, Ipc: criapi.NamespaceMode_POD,
				},
				// The pod's default for its containers' SELinux labels.
				SelinuxOptions: &criapi.SELinuxOption{Level: "s0:c1,c2"},
			},
		},
	}
	got := sandboxConfig(PodInfo{Config: podConfigOf(rec)}, tamperedSandboxConfig())
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("sandboxConfig (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name                  string
		pod                   sandbox.Pod
		unrecorded            bool
		privileged            bool
		network, ipc, pidMode criapi.NamespaceMode
	}{
		{"host pod", sandbox.Pod{HostPID: true, Privileged: true}, false, true,
			criapi.NamespaceMode_NODE, criapi.NamespaceMode_NODE, criapi.NamespaceMode_NODE},
		{"shared pid", sandbox.Pod{SharePID: true, NetNS: "/n", IPCNS: "/i"}, false, false,
			criapi.NamespaceMode_POD, criapi.NamespaceMode_POD, criapi.NamespaceMode_POD},
		// A record from before version 2 kept neither: the request's are
		// taken, as the version that made the pod did.
		{"unrecorded", sandbox.Pod{NetNS: "/n", IPCNS: "/i"}, true, true,
			criapi.NamespaceMode_POD, criapi.NamespaceMode_POD, criapi.NamespaceMode_NODE},
		{"unrecorded shared pid", sandbox.Pod{SharePID: true, NetNS: "/n", IPCNS: "/i"}, true, true,
			criapi.NamespaceMode_POD, criapi.NamespaceMode_POD, criapi.NamespaceMode_POD},
	} {
		info := PodInfo{Config: podConfigOf(&tc.pod), SecurityUnrecorded: tc.unrecorded}
		got := sandboxConfig(info, tamperedSandboxConfig()).GetLinux().GetSecurityContext()
		ns := got.GetNamespaceOptions()
		if got.GetPrivileged() != tc.privileged || ns.GetNetwork() != tc.network || ns.GetIpc() != tc.ipc || ns.GetPid() != tc.pidMode {
			t.Errorf("%s: privileged %v, network %s, ipc %s, pid %s; want %v, %s, %s, %s", tc.name,
				got.GetPrivileged(), ns.GetNetwork(), ns.GetIpc(), ns.GetPid(), tc.privileged, tc.network, tc.ipc, tc.pidMode)
		}
		if tc.unrecorded && info.Config.GetLinux().GetSecurityContext().GetPrivileged() {
			t.Errorf("%s: sandboxConfig changed the record's config", tc.name)
		}
	}
}

// TestContainerLogPath: log_path is relative to the pod's recorded
// log_directory and cannot leave it.
func TestContainerLogPath(t *testing.T) {
	pod := PodInfo{ID: "p1", Config: podConfigOf(&sandbox.Pod{LogDir: "/var/log/pods/x"})}
	req := func(lp string) *criapi.CreateContainerRequest {
		return &criapi.CreateContainerRequest{
			Config: &criapi.ContainerConfig{
				Metadata: &criapi.ContainerMetadata{Name: "app"}, Image: &criapi.ImageSpec{Image: "busybox"}, LogPath: lp,
			},
			SandboxConfig: tamperedSandboxConfig(),
		}
	}
	in, oci := spec.Input{}, &specs.Spec{}
	rec, err := containerRecord("c1", pod, "sha256:x", req("app/0.log"), oci, in)
	if err != nil || rec.LogPath != "/var/log/pods/x/app/0.log" || rec.LogDir != "/var/log/pods/x" {
		t.Fatalf("containerRecord = %q in %q, %v; want /var/log/pods/x/app/0.log in the pod's directory", rec.LogPath, rec.LogDir, err)
	}
	for _, lp := range []string{"../../x.log", "/tmp/x.log", "app/../../x.log", "..", "app/.."} {
		_, err := containerRecord("c1", pod, "sha256:x", req(lp), oci, in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), lp) {
			t.Errorf("log_path %q: %v, want InvalidArgument naming it", lp, err)
		}
	}
	if _, err := containerRecord("c1", PodInfo{ID: "p1", Config: podConfigOf(&sandbox.Pod{})}, "sha256:x", req("app/0.log"), oci, in); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("log_path in a pod without a log directory: %v, want InvalidArgument (the request's log_directory is not the pod's)", err)
	}
}
