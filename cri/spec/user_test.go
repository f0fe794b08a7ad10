package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestUser(t *testing.T) {
	i64 := func(v int64) *criapi.Int64Value { return &criapi.Int64Value{Value: v} }
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		want   specs.User
		err    errKind
		// mention: words the error must contain, so it names what was wrong.
		mention []string
	}{
		{name: "no user is root, with root's groups", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
		{name: "image user name", mutate: func(in *Input) { in.Image.User = "app" }, want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}}},
		{name: "image uid in passwd", mutate: func(in *Input) { in.Image.User = "1" }, want: specs.User{UID: 1, GID: 1, AdditionalGids: []uint32{1, 29}}},
		{name: "image uid not in passwd gets gid 0", mutate: func(in *Input) { in.Image.User = "4242" }, want: specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "image uid:gid", mutate: func(in *Input) { in.Image.User = "1000:44" }, want: specs.User{UID: 1000, GID: 44, AdditionalGids: []uint32{10, 44}}},
		{name: "image name:group", mutate: func(in *Input) { in.Image.User = "app:audio" }, want: specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{10, 29, 44}}},
		{name: "image uid:group", mutate: func(in *Input) { in.Image.User = "4242:video" }, want: specs.User{UID: 4242, GID: 44, AdditionalGids: []uint32{44}}},
		{name: "image name:gid", mutate: func(in *Input) { in.Image.User = "daemon:7" }, want: specs.User{UID: 1, GID: 7, AdditionalGids: []uint32{7, 29}}},
		{name: "image user name missing", mutate: func(in *Input) { in.Image.User = "ghost" }, err: invalid, mention: []string{`"ghost"`, "/etc/passwd"}},
		{name: "image group name missing", mutate: func(in *Input) { in.Image.User = "app:ghosts" }, err: invalid, mention: []string{`"ghosts"`, "/etc/group"}},
		{name: "image user without passwd", mutate: func(in *Input) { in.Image.User = "app"; in.Passwd = nil }, err: invalid, mention: []string{`"app"`}},
		{name: "numeric user without passwd", mutate: func(in *Input) { in.Image.User = "1000"; in.Passwd, in.Group = nil, nil }, want: specs.User{UID: 1000, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "image user too many colons", mutate: func(in *Input) { in.Image.User = "a:b:c" }, err: invalid},
		{name: "image user empty group", mutate: func(in *Input) { in.Image.User = "app:" }, err: invalid},
		{name: "image uid out of range", mutate: func(in *Input) { in.Image.User = "4294967295" }, err: invalid},
		{name: "run_as_user overrides image", mutate: func(in *Input) { in.Image.User = "app"; sc(in).RunAsUser = i64(1) }, want: specs.User{UID: 1, GID: 1, AdditionalGids: []uint32{1, 29}}},
		{name: "run_as_user and run_as_group", mutate: func(in *Input) { sc(in).RunAsUser = i64(1000); sc(in).RunAsGroup = i64(3000) }, want: specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{10, 44, 3000}}},
		{name: "run_as_username", mutate: func(in *Input) { sc(in).RunAsUsername = "app" }, want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}}},
		{name: "run_as_username missing", mutate: func(in *Input) { sc(in).RunAsUsername = "ghost" }, err: invalid, mention: []string{`"ghost"`, "/etc/passwd"}},
		// containerd reads a numeric user name as a uid, as it does an image USER.
		{name: "numeric run_as_username in passwd", mutate: func(in *Input) { sc(in).RunAsUsername = "1000" }, want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}}},
		{name: "numeric run_as_username not in passwd", mutate: func(in *Input) { sc(in).RunAsUsername = "4242" }, want: specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "numeric run_as_username out of range", mutate: func(in *Input) { sc(in).RunAsUsername = "4294967295" }, err: invalid, mention: []string{"run_as_username"}},
		{name: "run_as_username with a group", mutate: func(in *Input) { sc(in).RunAsUsername = "app:video" }, err: invalid, mention: []string{"run_as_username", `"app:video"`}},
		{name: "run_as_username and run_as_group", mutate: func(in *Input) { sc(in).RunAsUsername = "app"; sc(in).RunAsGroup = i64(3000) }, want: specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{10, 44, 3000}}},
		{name: "run_as_group alone", mutate: func(in *Input) { sc(in).RunAsGroup = i64(5) }, err: invalid},
		{name: "run_as_user and run_as_username", mutate: func(in *Input) { sc(in).RunAsUser = i64(5); sc(in).RunAsUsername = "app" }, err: invalid},
		{name: "negative run_as_user", mutate: func(in *Input) { sc(in).RunAsUser = i64(-1) }, err: invalid},
		{
			name:   "supplemental groups merge",
			mutate: func(in *Input) { in.Image.User = "app"; sc(in).SupplementalGroups = []int64{2000, 44} },
			want:   specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000, 2000}},
		},
		{
			name: "supplemental groups strict drops the image's",
			mutate: func(in *Input) {
				in.Image.User = "app"
				sc(in).SupplementalGroups = []int64{2000}
				sc(in).SupplementalGroupsPolicy = criapi.SupplementalGroupsPolicy_Strict
			},
			want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 2000}},
		},
		{
			// critest's Merge spec: uid 1000 of test-image-predefined-group
			// is a member of group-defined-in-image (50000).
			name:   "merge adds the image's groups of run_as_user",
			mutate: func(in *Input) { predefinedGroup(in); sc(in).SupplementalGroups = []int64{1234} },
			want:   specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 1234, 50000}},
		},
		{
			name: "strict leaves the image's groups out",
			mutate: func(in *Input) {
				predefinedGroup(in)
				sc(in).SupplementalGroups = []int64{1234}
				sc(in).SupplementalGroupsPolicy = criapi.SupplementalGroupsPolicy_Strict
			},
			want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 1234}},
		},
		{
			name: "strict with run_as_group and no supplemental groups",
			mutate: func(in *Input) {
				sc(in).RunAsUser = i64(1000)
				sc(in).RunAsGroup = i64(3000)
				sc(in).SupplementalGroupsPolicy = criapi.SupplementalGroupsPolicy_Strict
			},
			want: specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{3000}},
		},
		{
			name: "strict applies to the image's USER too",
			mutate: func(in *Input) {
				in.Image.User = "app"
				sc(in).SupplementalGroupsPolicy = criapi.SupplementalGroupsPolicy_Strict
			},
			want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000}},
		},
		{
			// A uid the image's passwd does not name has no name to look up
			// in /etc/group: Merge adds nothing but the request's groups.
			name:   "merge for a uid without a passwd entry",
			mutate: func(in *Input) { sc(in).RunAsUser = i64(4242); sc(in).SupplementalGroups = []int64{10} },
			want:   specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0, 10}},
		},
		{
			// The kubelet copies the pod's runAsUser, runAsGroup,
			// supplementalGroups and fsGroup into every container's context;
			// the pod-level fields are the pause process's (containerd reads
			// them only there), so they never change a container's user.
			name: "pod-level user fields do not reach the container",
			mutate: func(in *Input) {
				psc := &criapi.LinuxSandboxSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{77}}
				in.Sandbox.Linux = &criapi.LinuxPodSandboxConfig{SecurityContext: psc}
			},
			want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}},
		},
		{name: "unknown groups policy", mutate: func(in *Input) { sc(in).SupplementalGroupsPolicy = 7 }, err: invalid, mention: []string{"supplemental_groups_policy"}},
		{name: "negative supplemental group", mutate: func(in *Input) { sc(in).SupplementalGroups = []int64{-3} }, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			s, err := Container(in)
			checkErr(t, err, tc.err, tc.mention...)
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, s.Process.User); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFiles(t *testing.T) {
	p := parsePasswd([]byte(testPasswd))
	if len(p) != 4 || p[2] != (passwdEntry{name: "app", uid: 1000, gid: 1000}) {
		t.Errorf("parsePasswd = %+v", p)
	}
	g := parseGroup([]byte(testGroup))
	if len(g) != 7 || g[2].name != "wheel" || !cmp.Equal(g[2].members, []string{"root", "app"}) {
		t.Errorf("parseGroup = %+v", g)
	}
	if parsePasswd([]byte("x:x:notanumber:0\n:x:1:1\nshort:x\n")) != nil {
		t.Errorf("malformed passwd lines were not skipped")
	}
}

// predefinedGroup gives in the files of critest's
// test-image-predefined-group (busybox's adduser and addgroup output) and
// its run_as_user.
func predefinedGroup(in *Input) {
	in.Passwd = []byte("root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")
	in.Group = []byte("root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")
	sc(in).RunAsUser = &criapi.Int64Value{Value: 1000}
}
