package testregistry

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	goruntime "runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is where Debian's busybox-static installs its binary.
const BusyboxPath = "/bin/busybox"

// busyboxApplets get a symlink each in the test image.
var busyboxApplets = []string{"sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "env", "ps", "wget", "nc", "seq", "yes", "dd", "printf",
	"mkdir", "rm", "touch", "wc", "head", "tty", "stty", "hostname", "httpd", "grep", "mount", "df", "top"}

// Busybox builds a minimal busybox image (one layer: /bin/busybox from
// Debian's busybox-static, applet symlinks, /etc/passwd and /etc/group) whose
// user is "nobody" when user is empty.
func Busybox(t testing.TB, user string) v1.Image {
	t.Helper()
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatalf("busybox-static is needed to build the test image (hack/install-deps.sh): %v", err)
	}
	var entries []File
	for _, d := range []string{"bin/", "etc/", "tmp/", "root/"} {
		entries = append(entries, File{Name: d, Mode: 0o755, Typ: tar.TypeDir})
	}
	entries = append(entries, File{Name: "bin/busybox", Mode: 0o755, Data: bin},
		File{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		File{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")})
	for _, a := range busyboxApplets {
		entries = append(entries, File{Name: "bin/" + a, Typ: tar.TypeSymlink, Link: "busybox"})
	}
	img := Image(t, [][]File{entries})
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Cmd = []string{"sh"}
	cfg.Config.Env = []string{"PATH=/bin"}
	cfg.Config.User = user
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// GroupsBusybox is Busybox running as uid 1000, "default-user", whose
// image /etc/group makes it a member of its own group 1000 and of
// group-defined-in-image, 50000: the layout of critest's
// test-image-predefined-group, for tests of the supplemental groups policy.
func GroupsBusybox(t testing.TB) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(Busybox(t, "1000"), Layer(t, []File{
		{Name: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/:/bin/sh\n")},
		{Name: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")},
	}))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Random builds an image of n layers, each holding files of random bytes
// totalling about layerSize, so that compression cannot shrink it.
func Random(t testing.TB, n int, layerSize int64, seed uint64) v1.Image {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	layers := make([][]File, n)
	const fileSize = 256 << 10
	for i := range layers {
		layers[i] = append(layers[i], File{Name: "data/", Mode: 0o755, Typ: tar.TypeDir})
		for left := layerSize; left > 0; left -= fileSize {
			data := make([]byte, min(left, fileSize))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			layers[i] = append(layers[i], File{Name: "data/" + randName(rng), Mode: 0o644, Data: data})
		}
	}
	return Image(t, layers)
}

func randName(rng *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 16)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// File is one tar entry of a test layer. Typ is a tar type flag (regular
// when 0); a whiteout is a regular file named ".wh.<name>".
type File struct {
	Name string
	Mode int64
	Typ  byte
	Data []byte
	Link string
	Uid  int // owner; root when 0
	Gid  int
}

// Image builds an OCI image with one gzip layer per file list.
func Image(t testing.TB, layers [][]File) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, entries := range layers {
		ls = append(ls, Layer(t, entries))
	}
	return ImageOf(t, v1.Config{}, ls...)
}

// Layer builds one gzip layer from a file list; images that share a Layer
// share its blob.
func Layer(t testing.TB, entries []File) v1.Layer {
	t.Helper()
	data := tarOf(t, entries)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ImageOf builds an OCI image of these layers, for this host's platform,
// with cfg as its runtime config.
func ImageOf(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func tarOf(t testing.TB, entries []File) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, e := range entries {
		typ := e.Typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.Name, Mode: e.Mode, Typeflag: typ, Linkname: e.Link, Uid: e.Uid, Gid: e.Gid,
			Size: int64(len(e.Data)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
