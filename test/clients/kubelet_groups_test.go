package clients

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/test/harness"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestKubeletSupplementalGroupsPolicy: the kubelet v1.37 admits a pod
// with supplementalGroupsPolicy: Strict only on a node whose runtime
// advertises the feature (it refused it as SupplementalGroupsPolicyNotSupported
// before crib did), hands the pod's fsGroup and supplementalGroups down,
// and shows in containerStatuses[].user the ids crib reports, which are
// the container's own: Merge adds the group the image's /etc/group gives
// uid 1000, Strict does not.
func TestKubeletSupplementalGroupsPolicy(t *testing.T) {
	w := startKubelet(t, map[string]v1.Image{"library/groups:1": testregistry.GroupsBusybox(t)})
	pod := func(name, policy string) string {
		return harness.StaticPod(name, "  securityContext:\n    runAsUser: 1000\n    fsGroup: 2000\n    supplementalGroups: [1234]\n"+
			"    supplementalGroupsPolicy: "+policy+"\n  containers:\n  - name: id\n    image: groups:1\n    imagePullPolicy: IfNotPresent\n"+
			"    command: [sleep, '3600']\n")
	}
	want := map[string][]int64{"merge": {1000, 1234, 2000, 50000}, "strict": {1000, 1234, 2000}}
	w.WriteManifest("merge", pod("merge", "Merge"))
	w.WriteManifest("strict", pod("strict", "Strict"))
	waitUntil(t, 120*time.Second, "both pods' containers running", func() bool {
		got, err := w.Pods()
		if err != nil {
			return false
		}
		for name := range want {
			if p := got[name]; p.Status.Phase == "Failed" {
				t.Fatalf("the kubelet refused pod %s: %s", name, p.Status.Reason)
			} else if p.Running() != 1 {
				return false
			}
		}
		return true
	})
	got, err := w.Pods()
	if err != nil {
		t.Fatal(err)
	}
	for name, groups := range want {
		cs := got[name].Status.ContainerStatuses[0]
		if u := cs.User; u == nil || u.Linux == nil || u.Linux.UID != 1000 || u.Linux.GID != 1000 ||
			!slices.Equal(slices.Sorted(slices.Values(u.Linux.SupplementalGroups)), groups) {
			t.Errorf("pod %s: status user = %+v, want uid 1000, gid 1000, groups %v", name, u, groups)
		}
		resp, err := w.c.RawRt.ExecSync(context.Background(), &criapi.ExecSyncRequest{
			ContainerId: strings.TrimPrefix(cs.ContainerID, "crib://"), Cmd: []string{"id", "-G"}, Timeout: 10})
		if err != nil {
			t.Fatalf("pod %s: id -G: %v", name, err)
		}
		var ids []int64
		for _, f := range strings.Fields(string(resp.GetStdout())) {
			v, err := strconv.ParseInt(f, 10, 64)
			if err != nil {
				t.Fatalf("pod %s: id -G printed %q", name, resp.GetStdout())
			}
			ids = append(ids, v)
		}
		if !slices.Equal(ids, groups) {
			t.Errorf("pod %s: id -G = %v, want %v", name, ids, groups)
		}
	}
}
