package initproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// TestRecursiveReadOnlyBind binds a host directory that holds a tmpfs
// submount twice: with plain "ro" only the top mount is read-only and the
// submount stays writable (what an rbind does), with "rro" the submount is
// read-only too (mount_setattr with AT_RECURSIVE), and its mountinfo says so.
func TestRecursiveReadOnlyBind(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	vol := filepath.Join(dir, "vol")
	sub := filepath.Join(vol, "tmpfs")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("none", sub, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", sub, err)
		}
	})

	spec := baseSpec(rootfs, `try() { touch "$1" 2>/dev/null && echo writable || echo read-only; }
echo "== ro"; try /ro/top; try /ro/tmpfs/file
echo "== rro"; try /rro/top; try /rro/tmpfs/file
echo "== errno"; touch /rro/tmpfs/file 2>&1
echo "== mountinfo"; cat /proc/self/mountinfo; echo "== end"`)
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/ro", Type: "bind", Source: vol, Options: []string{"rbind", "rprivate", "ro"}},
		specs.Mount{Destination: "/rro", Type: "bind", Source: vol, Options: []string{"rbind", "rprivate", "ro", "rro"}},
	)
	out := mustRun(t, initmsg.Config{Spec: spec})
	if got := section(out, "ro"); got != "read-only\nwritable\n" {
		t.Errorf("plain ro: top, submount = %q, want read-only then writable", got)
	}
	if got := section(out, "rro"); got != "read-only\nread-only\n" {
		t.Errorf("rro: top, submount = %q, want both read-only", got)
	}
	if got := section(out, "errno"); !strings.Contains(got, "Read-only file system") {
		t.Errorf("touch in the rro submount said %q, want EROFS", got)
	}
	mounts := parseMounts(section(out, "mountinfo"))
	for point, ro := range map[string]bool{"/ro": true, "/ro/tmpfs": false, "/rro": true, "/rro/tmpfs": true} {
		m, ok := mounts[point]
		if !ok {
			t.Errorf("%s not mounted", point)
			continue
		}
		if hasOpt(m.opts, "ro") != ro {
			t.Errorf("%s options %s, want read-only %v", point, m.opts, ro)
		}
	}
	// The file the plain ro bind could write landed in the host's tmpfs;
	// nothing came through the rro bind.
	if _, err := os.Stat(filepath.Join(sub, "file")); err != nil {
		t.Errorf("write through /ro/tmpfs did not reach the host: %v", err)
	}
}
