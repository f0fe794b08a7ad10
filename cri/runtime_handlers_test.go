package cri

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crib-runtime/crib/internal/testutil"
)

type readyNetwork struct{}

func (readyNetwork) Ready() error { return nil }

// TestStatusAdvertisesRecursiveReadOnly: the default handler advertises
// recursive read-only mounts exactly when the kernel probe found
// mount_setattr (the kubelet and critest ask for them only then), and user
// namespaces exactly when the daemon's probe found them.
func TestStatusAdvertisesRecursiveReadOnly(t *testing.T) {
	for _, rro := range []bool{true, false} {
		s := &Server{network: readyNetwork{}, rro: rro, opts: Options{UserNamespaces: !rro}}
		resp, err := s.Status(context.Background(), &criapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		hs := resp.GetRuntimeHandlers()
		if len(hs) != 1 || hs[0].GetName() != "" || hs[0].GetFeatures() == nil {
			t.Fatalf("rro=%v: handlers %v, want the default handler with features", rro, hs)
		}
		if f := hs[0].GetFeatures(); f.GetRecursiveReadOnlyMounts() != rro || f.GetUserNamespaces() != !rro {
			t.Errorf("rro=%v: features %v", rro, f)
		}
	}
}

// TestProbeMountSetattr: run as root, the probe finds mount_setattr(2)
// exactly on Linux 5.12 and later.
func TestProbeMountSetattr(t *testing.T) {
	testutil.RequireRoot(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	want := major > 5 || major == 5 && minor >= 12
	if got := probeMountSetattr(); got != want {
		t.Errorf("probeMountSetattr() = %v on Linux %s, want %v", got, release, want)
	}
}
