package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestUserNamespacePod: a hostUsers: false pod (user namespace mode POD,
// container ids 0-65535 → host 100000-165535, as the kubelet sends them)
// whose containers share the pause's pid namespace. Status advertises
// the feature; a container is root inside (id, uid_map) and uid 100000 on
// the host (/proc/<pid>/status); a file it writes into its rootfs is
// 100000's on the host, one written through an idmapped hostPath volume
// is root's (KEP 127: the volume is seen with the pod's mapping undone);
// its net namespace is owned by the pod's user namespace, which root in
// the container may use (bring an interface down and up); a second
// container is in the same user namespace. Bad mappings are refused.
func TestUserNamespacePod(t *testing.T) {
	ctx := context.Background()
	vol := t.TempDir()
	w := newPodWorld(t)
	// The test's temp dir is 0700; a node's /run is not. The pod's root
	// must search down to the daemon's state dir.
	if err := os.Chmod(w.e.Dir, 0o711); err != nil {
		t.Fatal(err)
	}

	st, err := w.c.RawRt.Status(ctx, &criapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var advertised bool
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() == "" {
			advertised = h.GetFeatures().GetUserNamespaces()
		}
	}
	if !advertised {
		t.Fatalf("Status handlers %v: the default handler does not advertise user namespaces", st.GetRuntimeHandlers())
	}

	maps := []*criapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	pod := w.podConfig("userns", criapi.NamespaceMode_POD)
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &criapi.UserNamespace{Mode: criapi.NamespaceMode_POD, Uids: maps, Gids: maps}
	podID := w.run(t, pod)
	create := func(name string) string {
		t.Helper()
		nsOpts := pod.GetLinux().GetSecurityContext().GetNamespaceOptions()
		id, err := w.c.Runtime.CreateContainer(ctx, podID, &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: w.image},
			Command: []string{"sleep", "3600"},
			Mounts:  []*criapi.Mount{{ContainerPath: "/data", HostPath: vol, UidMappings: maps, GidMappings: maps}},
			Linux:   &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{NamespaceOptions: nsOpts}},
		}, pod)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if err := w.c.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		return id
	}
	id := create("a")

	out, _ := w.execOut(t, id, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; "+
		"echo x > /data/f && echo y > /newfile && echo written; ls -ln /bin/busybox /data/f 2>&1")
	t.Logf("in the container:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 7 {
		t.Fatalf("output %q: want uid_map, gid_map, uid, gid, written, two ls lines", out)
	}
	// The image's files (root's on the host) are root's inside, through
	// the idmapped layers; so is the file written through the volume.
	for _, l := range lines[5:7] {
		if f := strings.Fields(l); len(f) < 4 || f[2] != "0" || f[3] != "0" {
			t.Errorf("ls -ln in the container: %q, want owner 0 0", l)
		}
	}
	for i, want := range []string{"0 100000 65536", "0 100000 65536", "0", "0", "written"} {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != want {
			t.Errorf("line %d: %q, want %q", i, got, want)
		}
	}

	info, err := w.c.RawRt.ContainerStatus(ctx, &criapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid := infoPid(t, verboseInfo(t, info.GetInfo()))
	statusFile, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(statusFile), "\n") {
		if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "Gid:") {
			if f := strings.Fields(l); len(f) != 5 || f[1] != "100000" || f[2] != "100000" || f[3] != "100000" {
				t.Errorf("host /proc/%d/status %q: want every id 100000", pid, l)
			}
		}
	}
	hostUser, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	if ctrUser, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid)); ctrUser == hostUser || ctrUser == "" {
		t.Errorf("container user namespace %q, host's %q: want its own", ctrUser, hostUser)
	}

	// The pod's net namespace is owned by its user namespace (so root in
	// the container has capabilities over it), not by the host's.
	netns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	owner, err := unix.IoctlRetInt(int(netns.Fd()), unix.NS_GET_USERNS)
	netns.Close()
	if err != nil {
		t.Fatal(err)
	}
	var ost unix.Stat_t
	err = unix.Fstat(owner, &ost)
	unix.Close(owner)
	if err != nil {
		t.Fatal(err)
	}
	if ost.Ino != nsInode(t, pid, "user") {
		t.Errorf("the pod's net namespace is owned by user namespace %d, want the pod's %d", ost.Ino, nsInode(t, pid, "user"))
	}

	var fi syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "f"), &fi); err != nil {
		t.Fatalf("file written through the volume: %v", err)
	} else if fi.Uid != 0 || fi.Gid != 0 {
		t.Errorf("file written through the idmapped volume is %d:%d on the host, want 0:0", fi.Uid, fi.Gid)
	}
	upper := filepath.Join(w.e.Root, "containers", id, "upper", "newfile")
	if err := syscall.Stat(upper, &fi); err != nil {
		t.Fatalf("file written to the rootfs: %v", err)
	} else if fi.Uid != 100000 || fi.Gid != 100000 {
		t.Errorf("file written to the rootfs is %d:%d on the host, want 100000:100000", fi.Uid, fi.Gid)
	}

	id2 := create("b")
	info2, err := w.c.RawRt.ContainerStatus(ctx, &criapi.ContainerStatusRequest{ContainerId: id2, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	pid2 := infoPid(t, verboseInfo(t, info2.GetInfo()))
	if nsInode(t, pid, "user") != nsInode(t, pid2, "user") {
		t.Error("the pod's two containers are in different user namespaces")
	}
	if out, _ := w.execOut(t, id2, "cat /data/f"); strings.TrimSpace(out) != "x" {
		t.Errorf("second container reads %q from the volume, want x", out)
	}

	for name, u := range map[string]*criapi.UserNamespace{
		"two-ranges": {Mode: criapi.NamespaceMode_POD, Uids: append(maps, &criapi.IDMapping{ContainerId: 0, HostId: 200000, Length: 65536}), Gids: maps},
		"no-root":    {Mode: criapi.NamespaceMode_POD, Uids: []*criapi.IDMapping{{ContainerId: 1, HostId: 100000, Length: 65536}}, Gids: maps},
		"container":  {Mode: criapi.NamespaceMode_CONTAINER},
		"target":     {Mode: criapi.NamespaceMode_TARGET},
	} {
		bad := w.podConfig("userns-"+name, criapi.NamespaceMode_POD)
		bad.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
		if badID, err := w.c.Runtime.RunPodSandbox(ctx, bad, ""); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: RunPodSandbox = %q, %v; want InvalidArgument", name, badID, err)
		}
	}
}
