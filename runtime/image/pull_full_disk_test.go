package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestPullOnFullDiskBlamesTheDisk: a layer blob that cannot be written
// fails the pull as the store's error, not as "registry unreachable"
// (Unavailable): os.PathError satisfies net.Error, by which the
// registry's errors were told apart, so the fault injection test's pull
// on a full disk was reported as a registry that cannot be reached. A
// full disk, whichever write of the pull meets it, is ResourceExhausted.
// Here RLIMIT_FSIZE fails the write (with EFBIG) as a full disk does (with
// ENOSPC).
func TestPullOnFullDiskBlamesTheDisk(t *testing.T) {
	testutil.RequireRoot(t)
	reg := testregistry.Start(t)
	byTag, _ := reg.Push(t, "full:1", testregistry.Random(t, 1, 512<<10, 9))
	s := openStore(t, t.TempDir(), config.Registry{})

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	limited := old
	limited.Cur = 64 << 10 // the manifest and config fit, the layer does not
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limited); err != nil {
		t.Fatal(err)
	}
	_, err := s.Pull(context.Background(), byTag, Auth{})
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil || errors.Is(err, errdefs.ErrUnavailable) || strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "store: write") {
		t.Fatalf("pull whose blob cannot be written: %v; want the store's write error", err)
	}
	full := noSpace(fmt.Errorf("unpack layer: %w", &os.PathError{Op: "write", Path: "blob", Err: syscall.ENOSPC}))
	if !errors.Is(full, errdefs.ErrResourceExhausted) || !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("a full disk: %v; want ResourceExhausted", full)
	}
}
