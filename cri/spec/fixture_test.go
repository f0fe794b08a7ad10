package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	testID        = strings.Repeat("c", 64)
	testSandboxID = strings.Repeat("5", 64)
)

const testPasswd = `# image passwd
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:app user:/home/app:/bin/sh
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`

const testGroup = `root:x:0:
daemon:x:1:
wheel:x:10:root,app
app:x:1000:
video:x:44:app
audio:x:29:daemon
nogroup:x:65534:
`

// hostFiles is the fake host behind Input.Stat.
var hostFiles = map[string]HostFile{
	"/var/lib/kubelet/pods/uid-1/volumes/data": {IsDir: true, Mode: fs.ModeDir | 0o755},
	"/var/lib/kubelet/pods/uid-1/etc-hosts":    {Mode: 0o644},
	"/srv/shared":                              {IsDir: true, Mode: fs.ModeDir | 0o755},
	"/dev/fuse":                                {Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Type: 'c', Major: 10, Minor: 229},
	"/dev/sda":                                 {Mode: fs.ModeDevice | 0o660, Type: 'b', Major: 8, Minor: 0, GID: 6},
	"/dev/dri":                                 {IsDir: true, Mode: fs.ModeDir | 0o755},
}

func fakeStat(p string) (HostFile, error) {
	if f, ok := hostFiles[p]; ok {
		return f, nil
	}
	if p == "/denied" {
		return HostFile{}, fmt.Errorf("stat %s: %w", p, fs.ErrPermission)
	}
	return HostFile{}, fmt.Errorf("stat %s: %w", p, fs.ErrNotExist)
}

// baseInput is a typical kubelet-created container: pod network and IPC,
// its own pid namespace, the pod's files, busybox-like image.
func baseInput() Input {
	ns := func() *criapi.NamespaceOption {
		return &criapi.NamespaceOption{Network: criapi.NamespaceMode_POD, Pid: criapi.NamespaceMode_CONTAINER, Ipc: criapi.NamespaceMode_POD}
	}
	return Input{
		Nofile:    1048576,
		ID:        testID,
		SandboxID: testSandboxID,
		Config: &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: "app", Attempt: 1},
			Image:    &criapi.ImageSpec{Image: "sha256:" + strings.Repeat("e", 64), UserSpecifiedImage: "busybox:1.36"},
			Linux: &criapi.LinuxContainerConfig{
				SecurityContext: &criapi.LinuxContainerSecurityContext{NamespaceOptions: ns()},
			},
		},
		Sandbox: &criapi.PodSandboxConfig{
			Metadata: &criapi.PodSandboxMetadata{Name: "web-0", Namespace: "default", Uid: "uid-1"},
			Hostname: "web-0",
			Linux: &criapi.LinuxPodSandboxConfig{
				CgroupParent:    "/kubepods/burstable/poduid-1",
				SecurityContext: &criapi.LinuxSandboxSecurityContext{NamespaceOptions: ns()},
			},
		},
		Image: ImageConfig{
			Cmd: []string{"sh"},
			Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		},
		ImageName:    "docker.io/library/busybox:1.36",
		Rootfs:       "/run/crib/containers/" + testID + "/rootfs",
		NetNS:        "/run/crib/ns/net/" + testSandboxID,
		IPCNS:        "/run/crib/ns/ipc/" + testSandboxID,
		UTSNS:        "/run/crib/ns/uts/" + testSandboxID,
		CgroupsPath:  "/kubepods/burstable/poduid-1/" + testID,
		HostnamePath: "/var/lib/crib/sandboxes/" + testSandboxID + "/hostname",
		HostsPath:    "/var/lib/crib/sandboxes/" + testSandboxID + "/hosts",
		ResolvPath:   "/var/lib/crib/sandboxes/" + testSandboxID + "/resolv.conf",
		ShmPath:      "/run/crib/sandboxes/" + testSandboxID + "/shm",
		Passwd:       []byte(testPasswd),
		Group:        []byte(testGroup),
		Stat:         fakeStat,
	}
}

// sc returns the container's security context, for table mutations.
func sc(in *Input) *criapi.LinuxContainerSecurityContext {
	return in.Config.Linux.SecurityContext
}

// mustContainer builds a spec or fails the test.
func mustContainer(t *testing.T, in Input) *specs.Spec {
	t.Helper()
	s, err := Container(in)
	if err != nil {
		t.Fatalf("Container: %v", err)
	}
	return s
}

// errKind names the errdefs kind a table expects; "" means success.
type errKind string

const (
	ok      errKind = ""
	invalid errKind = "invalid"
	other   errKind = "other"
)

// checkErr fails the test unless err is of the expected kind and, when
// want is not ok, mentions every one of mention.
func checkErr(t *testing.T, err error, want errKind, mention ...string) {
	t.Helper()
	switch want {
	case ok:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	case invalid:
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("error = %v, want InvalidArgument", err)
		}
	case other:
		if err == nil || errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("error = %v, want an unclassified error", err)
		}
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}
