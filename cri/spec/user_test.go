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
	}{
		{name: "no user is root, with root's groups", want: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0, 10}}},
		{name: "image user name", mutate: func(in *Input) { in.Image.User = "app" }, want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}}},
		{name: "image uid in passwd", mutate: func(in *Input) { in.Image.User = "1" }, want: specs.User{UID: 1, GID: 1, AdditionalGids: []uint32{1, 29}}},
		{name: "image uid not in passwd gets gid 0", mutate: func(in *Input) { in.Image.User = "4242" }, want: specs.User{UID: 4242, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "image uid:gid", mutate: func(in *Input) { in.Image.User = "1000:44" }, want: specs.User{UID: 1000, GID: 44, AdditionalGids: []uint32{10, 44}}},
		{name: "image name:group", mutate: func(in *Input) { in.Image.User = "app:audio" }, want: specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{10, 29, 44}}},
		{name: "image uid:group", mutate: func(in *Input) { in.Image.User = "4242:video" }, want: specs.User{UID: 4242, GID: 44, AdditionalGids: []uint32{44}}},
		{name: "image name:gid", mutate: func(in *Input) { in.Image.User = "daemon:7" }, want: specs.User{UID: 1, GID: 7, AdditionalGids: []uint32{7, 29}}},
		{name: "image user name missing", mutate: func(in *Input) { in.Image.User = "ghost" }, err: notFound},
		{name: "image group name missing", mutate: func(in *Input) { in.Image.User = "app:ghosts" }, err: notFound},
		{name: "image user without passwd", mutate: func(in *Input) { in.Image.User = "app"; in.Passwd = nil }, err: notFound},
		{name: "numeric user without passwd", mutate: func(in *Input) { in.Image.User = "1000"; in.Passwd, in.Group = nil, nil }, want: specs.User{UID: 1000, GID: 0, AdditionalGids: []uint32{0}}},
		{name: "image user too many colons", mutate: func(in *Input) { in.Image.User = "a:b:c" }, err: invalid},
		{name: "image user empty group", mutate: func(in *Input) { in.Image.User = "app:" }, err: invalid},
		{name: "image uid out of range", mutate: func(in *Input) { in.Image.User = "4294967295" }, err: invalid},
		{name: "run_as_user overrides image", mutate: func(in *Input) { in.Image.User = "app"; sc(in).RunAsUser = i64(1) }, want: specs.User{UID: 1, GID: 1, AdditionalGids: []uint32{1, 29}}},
		{name: "run_as_user and run_as_group", mutate: func(in *Input) { sc(in).RunAsUser = i64(1000); sc(in).RunAsGroup = i64(3000) }, want: specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{10, 44, 3000}}},
		{name: "run_as_username", mutate: func(in *Input) { sc(in).RunAsUsername = "app" }, want: specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 44, 1000}}},
		{name: "run_as_username missing", mutate: func(in *Input) { sc(in).RunAsUsername = "ghost" }, err: notFound},
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
		{name: "unknown groups policy", mutate: func(in *Input) { sc(in).SupplementalGroupsPolicy = 7 }, err: invalid},
		{name: "negative supplemental group", mutate: func(in *Input) { sc(in).SupplementalGroups = []int64{-3} }, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			s, err := Container(in)
			checkErr(t, err, tc.err)
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
