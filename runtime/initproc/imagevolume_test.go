package initproc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crib-runtime/crib/runtime/initmsg"
)

// imageLayers makes a two-layer image in dir: a busybox base and a top
// layer that overrides /etc/layer, adds /etc/only-top, a file where a
// directory would be (/data/file) and a symlink that climbs out of the
// image towards host, a host directory holding a marker file.
func imageLayers(t *testing.T, dir, host string) (top, base string) {
	t.Helper()
	base = busyboxRootfs(t, filepath.Join(dir, "l0"))
	top = filepath.Join(dir, "l1")
	for _, d := range []string{"etc", "data"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(base, "etc/layer"):     "base\n",
		filepath.Join(top, "etc/layer"):      "top\n",
		filepath.Join(top, "etc/only-top"):   "t\n",
		filepath.Join(top, "data/file"):      "f\n",
		filepath.Join(host, "host-marker"):   "host\n",
		filepath.Join(host, "sub/marker"):    "host\n",
		filepath.Join(base, "etc/base-only"): "b\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// ../../… past any depth, then the host directory's absolute path.
	if err := os.Symlink(strings.Repeat("../", 32)+strings.TrimPrefix(host, "/")+"/sub", filepath.Join(top, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host+"/sub", filepath.Join(top, "abs-escape")); err != nil {
		t.Fatal(err)
	}
	return top, base
}

func imageVolume(dst string, layers []string, extra ...string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "overlay", Source: "overlay",
		Options: append([]string{"ro", "nosuid", "nodev", "lowerdir=" + strings.Join(layers, ":")}, extra...)}
}

// TestImageVolume mounts an image volume (two layers, then one) and its
// sub path, and checks from inside: the merged files, read-only (EROFS),
// nosuid and nodev, and that a binary on it runs.
func TestImageVolume(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	top, base := imageLayers(t, filepath.Join(dir, "image"), filepath.Join(dir, "host"))
	spec := baseSpec(rootfs, `echo "== files"; cat /mnt/vol/etc/layer /mnt/vol/etc/base-only /mnt/vol/etc/only-top
echo "== write"; touch /mnt/vol/x 2>&1; touch /mnt/vol/etc/layer 2>&1
echo "== exec"; /mnt/vol/bin/echo ran
echo "== sub"; cat /mnt/sub/layer /mnt/sub/only-top; ls /mnt/sub/etc 2>&1; touch /mnt/sub/y 2>&1
echo "== one"; cat /mnt/one/etc/layer; touch /mnt/one/z 2>&1
echo "== mountinfo"; cat /proc/self/mountinfo
echo "== end"`)
	spec.Mounts = append(spec.Mounts,
		imageVolume("/mnt/vol", []string{top, base}),
		imageVolume("/mnt/sub", []string{top, base}, initmsg.ImageSubPathOption+"etc"),
		imageVolume("/mnt/one", []string{base}))
	out := mustRun(t, initmsg.Config{Spec: spec})
	if got := section(out, "files"); got != "top\nb\nt\n" {
		t.Errorf("files = %q, want the top layer's over the base's", got)
	}
	if got := section(out, "write"); strings.Count(got, "Read-only file system") != 2 {
		t.Errorf("writes: %q, want EROFS twice", got)
	}
	if got := section(out, "exec"); got != "ran\n" {
		t.Errorf("exec from the volume: %q", got)
	}
	if got := section(out, "sub"); !strings.HasPrefix(got, "top\nt\n") || !strings.Contains(got, "No such file") ||
		!strings.Contains(got, "Read-only file system") {
		t.Errorf("sub path: %q, want /etc of the image only, read-only", got)
	}
	if got := section(out, "one"); !strings.HasPrefix(got, "base\n") || !strings.Contains(got, "Read-only file system") {
		t.Errorf("one layer: %q", got)
	}
	mounts := parseMounts(section(out, "mountinfo"))
	for _, p := range []string{"/mnt/vol", "/mnt/sub", "/mnt/one"} {
		m, ok := mounts[p]
		if !ok {
			t.Errorf("%s not mounted", p)
			continue
		}
		for _, o := range []string{"ro", "nosuid", "nodev"} {
			if !hasOpt(m.opts, o) {
				t.Errorf("%s options %s lack %s", p, m.opts, o)
			}
		}
		if hasOpt(m.opts, "noexec") {
			t.Errorf("%s is noexec: %s", p, m.opts)
		}
	}
	if m := mounts["/mnt/sub"]; m.root != "/etc" || m.fsType != "overlay" {
		t.Errorf("/mnt/sub = %+v, want the overlay's /etc", m)
	}
}

// TestImageVolumeSubPathErrors: a sub path that is missing, not a
// directory, or a symlink out of the image fails the mount with a message
// that names it; the symlink never reaches the host directory.
func TestImageVolumeSubPathErrors(t *testing.T) {
	dir := t.TempDir()
	rootfs := busyboxRootfs(t, filepath.Join(dir, "rootfs"))
	host := filepath.Join(dir, "host")
	top, base := imageLayers(t, filepath.Join(dir, "image"), host)
	for _, tt := range []struct{ sub, contains string }{
		{"nope", `image sub path "nope" does not exist in the image`},
		{"data/file", `image sub path "data/file" is not a directory in the image`},
		{"escape", `image sub path "escape" does not exist in the image`},
		{"abs-escape", `image sub path "abs-escape" does not exist in the image`},
		{"../../../../" + strings.TrimPrefix(host, "/") + "/sub", "does not exist in the image"},
	} {
		t.Run(tt.sub, func(t *testing.T) {
			spec := baseSpec(rootfs, "echo must-not-run")
			spec.Mounts = append(spec.Mounts, imageVolume("/mnt/vol", []string{top, base}, initmsg.ImageSubPathOption+tt.sub))
			res := runInit(t, initmsg.Config{Spec: spec}, newNS)
			if res.ready || res.err == nil {
				t.Fatalf("want an error before ready, got %+v", res)
			}
			if res.err.Step != stepMount || res.err.Path != "/mnt/vol" || !strings.Contains(res.err.Msg, tt.contains) {
				t.Errorf("got %+v, want step mount on /mnt/vol containing %q", *res.err, tt.contains)
			}
		})
	}
	for _, tt := range []struct {
		name     string
		opts     []string
		contains string
	}{
		{"writable", []string{"nosuid", "lowerdir=" + top + ":" + base}, `must be mounted read-only`},
		{"upperdir", []string{"ro", "lowerdir=" + top, "upperdir=" + dir}, `option "upperdir=`},
		{"no layers", []string{"ro"}, "lowerdir is missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := baseSpec(rootfs, "echo must-not-run")
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/mnt/vol", Type: "overlay", Source: "overlay", Options: tt.opts})
			res := runInit(t, initmsg.Config{Spec: spec}, newNS)
			if res.ready || res.err == nil || !strings.Contains(res.err.Msg, tt.contains) {
				t.Fatalf("got %+v, want an error containing %q", res.err, tt.contains)
			}
		})
	}
}
