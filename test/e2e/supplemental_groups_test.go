package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestSupplementalGroupsPolicy runs containers with each policy through the
// CRI and checks, for each, that the init process (pid 1 of the container's
// own pid namespace, read from its /proc/1/status) and an exec'd `id` have
// the expected ids, and that ContainerStatus.user reports exactly those:
// Merge adds the groups the image's /etc/group gives the user, Strict
// leaves them out.
func TestSupplementalGroupsPolicy(t *testing.T) {
	ctx := context.Background()
	p := startHostPodIn(t, harness.NewEnv(t), nil, "sleep", "3600")
	reg := testregistry.Start(t)
	ref, _ := reg.Push(t, "groups/busybox:1", testregistry.GroupsBusybox(t))
	if _, err := p.c.Images.PullImage(ctx, &criapi.ImageSpec{Image: ref}, nil, nil); err != nil {
		t.Fatal(err)
	}
	i64 := func(v int64) *criapi.Int64Value { return &criapi.Int64Value{Value: v} }
	for i, tc := range []struct {
		name string
		sc   *criapi.LinuxContainerSecurityContext
		want *criapi.LinuxContainerUser
	}{
		{
			name: "image user, merge",
			sc:   &criapi.LinuxContainerSecurityContext{},
			want: &criapi.LinuxContainerUser{Uid: 1000, Gid: 1000, SupplementalGroups: []int64{1000, 50000}},
		},
		{
			name: "run_as_user, merge",
			sc:   &criapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{1234}},
			want: &criapi.LinuxContainerUser{Uid: 1000, Gid: 1000, SupplementalGroups: []int64{1000, 1234, 50000}},
		},
		{
			name: "run_as_user, strict",
			sc: &criapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{1234},
				SupplementalGroupsPolicy: criapi.SupplementalGroupsPolicy_Strict},
			want: &criapi.LinuxContainerUser{Uid: 1000, Gid: 1000, SupplementalGroups: []int64{1000, 1234}},
		},
		{
			name: "run_as_username and run_as_group, strict",
			sc: &criapi.LinuxContainerSecurityContext{RunAsUsername: "default-user", RunAsGroup: i64(3000),
				SupplementalGroupsPolicy: criapi.SupplementalGroupsPolicy_Strict},
			want: &criapi.LinuxContainerUser{Uid: 1000, Gid: 3000, SupplementalGroups: []int64{3000}},
		},
		{
			name: "numeric run_as_username, merge",
			sc:   &criapi.LinuxContainerSecurityContext{RunAsUsername: "1000", RunAsGroup: i64(3000)},
			want: &criapi.LinuxContainerUser{Uid: 1000, Gid: 3000, SupplementalGroups: []int64{3000, 50000}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := p.runImage(t, fmt.Sprintf("groups%d", i), ref, tc.sc, "sleep", "3600")
			st, err := p.c.RawRt.ContainerStatus(ctx, &criapi.ContainerStatusRequest{ContainerId: id})
			if err != nil {
				t.Fatal(err)
			}
			got := st.GetStatus().GetUser().GetLinux()
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("ContainerStatus.user (-want +got):\n%s", diff)
			}
			if init := initIDs(t, p, id); !cmp.Equal(tc.want, init, protocmp.Transform()) {
				t.Errorf("init's /proc/1/status ids = %v, want %v", init, tc.want)
			}
			// busybox's id -G prints getgroups(2) as it is, which the
			// kernel keeps sorted: critest's expected "1000 1234 50000".
			var wantG []string
			for _, g := range tc.want.GetSupplementalGroups() {
				wantG = append(wantG, strconv.FormatInt(g, 10))
			}
			out := execOut(t, p, id, "sh", "-c", "id -u; id -g; id -G")
			if want := fmt.Sprintf("%d\n%d\n%s\n", tc.want.GetUid(), tc.want.GetGid(), strings.Join(wantG, " ")); out != want {
				t.Errorf("exec id = %q, want %q", out, want)
			}
		})
	}
}

// TestRunAsUsernameMissing: a run_as_username the image's passwd does not
// define is an InvalidArgument naming the user, as the CRI says the
// runtime MUST error.
func TestRunAsUsernameMissing(t *testing.T) {
	ctx := context.Background()
	p := startHostPodIn(t, harness.NewEnv(t), nil, "sleep", "3600")
	_, err := p.c.RawRt.CreateContainer(ctx, &criapi.CreateContainerRequest{PodSandboxId: p.podID, SandboxConfig: p.pod,
		Config: &criapi.ContainerConfig{
			Metadata: &criapi.ContainerMetadata{Name: "ghost"}, Image: &criapi.ImageSpec{Image: p.ref}, Command: []string{"true"},
			Linux: &criapi.LinuxContainerConfig{SecurityContext: &criapi.LinuxContainerSecurityContext{RunAsUsername: "ghost",
				NamespaceOptions: &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_CONTAINER}}},
		}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("CreateContainer with a missing user: %v, want InvalidArgument", err)
	}
	harness.MustContain(t, err.Error(), `"ghost"`, "/etc/passwd")
}

// runImage creates and starts a container of image ref with security
// context sc (its own pid namespace, the host's network).
func (p streamPod) runImage(t *testing.T, name, ref string, sc *criapi.LinuxContainerSecurityContext, cmd ...string) string {
	t.Helper()
	sc.NamespaceOptions = &criapi.NamespaceOption{Network: criapi.NamespaceMode_NODE, Pid: criapi.NamespaceMode_CONTAINER}
	ctx := context.Background()
	id, err := p.c.Runtime.CreateContainer(ctx, p.podID, &criapi.ContainerConfig{
		Metadata: &criapi.ContainerMetadata{Name: name}, Image: &criapi.ImageSpec{Image: ref}, Command: cmd,
		Linux: &criapi.LinuxContainerConfig{SecurityContext: sc},
	}, p.pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// execOut runs cmd in container id and returns its stdout; a non-zero
// exit fails the test.
func execOut(t *testing.T, p streamPod, id string, cmd ...string) string {
	t.Helper()
	resp, err := p.c.RawRt.ExecSync(context.Background(), &criapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 10})
	if err != nil || resp.GetExitCode() != 0 {
		t.Fatalf("exec %q: %v, exit %d, stderr %q", cmd, err, resp.GetExitCode(), resp.GetStderr())
	}
	return string(resp.GetStdout())
}

// initIDs reads the real uid, gid and groups of the container's init from
// its /proc/1/status, the way containerd's and the kernel's view has them.
func initIDs(t *testing.T, p streamPod, id string) *criapi.LinuxContainerUser {
	t.Helper()
	u := &criapi.LinuxContainerUser{}
	for line := range strings.Lines(execOut(t, p, id, "cat", "/proc/1/status")) {
		key, val, _ := strings.Cut(strings.TrimSpace(line), ":")
		f := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Fatalf("%s line %q: %v", key, line, err)
			}
			if key == "Uid" {
				u.Uid = v
			} else {
				u.Gid = v
			}
		case "Groups":
			for _, s := range f {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					t.Fatalf("Groups line %q: %v", line, err)
				}
				u.SupplementalGroups = append(u.SupplementalGroups, v)
			}
			slices.Sort(u.SupplementalGroups)
		}
	}
	return u
}
