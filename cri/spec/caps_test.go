package spec

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCapabilities(t *testing.T) {
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(allCaps), func(c string) bool { return slices.Contains(drop, c) })
	}
	for _, tc := range []struct {
		name       string
		add, drop  []string
		ambient    []string
		privileged bool
		held       []string // the runtime's bounding set; nil: all
		want       []string
		wantAmb    []string
		err        errKind
	}{
		{name: "defaults", want: ordered(setOf(defaultCaps))},
		{name: "add without prefix, lower case", add: []string{"net_admin"}, want: ordered(setOf(append(slices.Clone(defaultCaps), "CAP_NET_ADMIN")))},
		{name: "add with prefix", add: []string{"CAP_SYS_PTRACE"}, want: ordered(setOf(append(slices.Clone(defaultCaps), "CAP_SYS_PTRACE")))},
		{name: "drop", drop: []string{"NET_RAW", "CAP_MKNOD"}, want: ordered(setOf(slices.DeleteFunc(slices.Clone(defaultCaps), func(c string) bool { return c == "CAP_NET_RAW" || c == "CAP_MKNOD" })))},
		{name: "drop ALL", drop: []string{"ALL"}, want: []string{}},
		{name: "drop ALL add one", drop: []string{"all"}, add: []string{"NET_BIND_SERVICE"}, want: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "add ALL drop one", add: []string{"ALL"}, drop: []string{"CHOWN"}, want: without("CAP_CHOWN")},
		{name: "add ALL drop ALL", add: []string{"ALL"}, drop: []string{"ALL"}, want: []string{}},
		{name: "ambient goes to every set", drop: []string{"ALL"}, ambient: []string{"NET_BIND_SERVICE"}, want: []string{"CAP_NET_BIND_SERVICE"}, wantAmb: []string{"CAP_NET_BIND_SERVICE"}},
		{name: "privileged gets all, drops ignored", privileged: true, drop: []string{"ALL"}, want: allCaps},
		{name: "privileged gets what the runtime holds", privileged: true, held: without("CAP_SYS_RESOURCE", "CAP_BPF"), want: without("CAP_SYS_RESOURCE", "CAP_BPF")},
		{name: "add ALL gets what the runtime holds", add: []string{"ALL"}, held: without("CAP_SYS_RESOURCE"), want: without("CAP_SYS_RESOURCE")},
		{name: "defaults the runtime lacks are left out", held: without("CAP_MKNOD"), want: ordered(setOf(slices.DeleteFunc(slices.Clone(defaultCaps), func(c string) bool { return c == "CAP_MKNOD" })))},
		{name: "an add the runtime lacks is refused", add: []string{"SYS_RESOURCE"}, held: without("CAP_SYS_RESOURCE"), err: invalid},
		{name: "an ambient the runtime lacks is refused", ambient: []string{"SYS_RESOURCE"}, held: without("CAP_SYS_RESOURCE"), err: invalid},
		{name: "add ALL and a lacking one by name is refused", add: []string{"ALL", "SYS_RESOURCE"}, held: without("CAP_SYS_RESOURCE"), err: invalid},
		{name: "unknown add", add: []string{"CAP_WIZARDRY"}, err: invalid},
		{name: "unknown drop", drop: []string{"FLY"}, err: invalid},
		{name: "unknown ambient", ambient: []string{"NOPE"}, err: invalid},
		{name: "unknown add is refused even for privileged", privileged: true, ambient: []string{"NOPE"}, err: invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			in.Sandbox.Linux.SecurityContext.Privileged = tc.privileged
			sc(&in).Privileged = tc.privileged
			in.Capabilities = tc.held
			sc(&in).Capabilities = &criapi.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop, AddAmbientCapabilities: tc.ambient}
			s, err := Container(in)
			checkErr(t, err, tc.err, "capability")
			if err != nil {
				return
			}
			c := s.Process.Capabilities
			for name, got := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", name, diff)
				}
			}
			if !cmp.Equal(tc.wantAmb, c.Ambient) || !cmp.Equal(tc.wantAmb, c.Inheritable) {
				t.Errorf("ambient = %v, inheritable = %v, want %v", c.Ambient, c.Inheritable, tc.wantAmb)
			}
		})
	}
}

func setOf(caps []string) map[string]bool {
	m := make(map[string]bool)
	for _, c := range caps {
		m[c] = true
	}
	return m
}

func TestCapsInMask(t *testing.T) {
	if got := CapsInMask(1<<0 | 1<<24 | 1<<40); !cmp.Equal(got, []string{"CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_CHECKPOINT_RESTORE"}) {
		t.Errorf("CapsInMask = %v", got)
	}
}
