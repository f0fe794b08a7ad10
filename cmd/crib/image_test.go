package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crib-runtime/crib/internal/config"
	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/runtime/image"
	"github.com/crib-runtime/crib/test/testregistry"
)

// TestImageImportCommand runs `crib image import` on a file, on stdin and
// on a layout directory, into the root a config names and into one
// --root names, and checks its refusals.
func TestImageImportCommand(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	cfgRoot, flagRoot := filepath.Join(dir, "cfg-root"), filepath.Join(dir, "flag-root")
	cfgPath := filepath.Join(dir, "crib.toml")
	if err := os.WriteFile(cfgPath, []byte("root = \""+cfgRoot+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := testregistry.Random(t, 1, 16<<10, 71)
	archive := testregistry.DockerArchive(t, map[string]v1.Image{"cmd/file:1": img})
	layout := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img, Annotations: map[string]string{"org.opencontainers.image.ref.name": "3"}})

	for _, tc := range []struct {
		name string
		args []string
		// stdin, when set, is the file given as stdin.
		stdin string
		code  int
		root  string // where the image must then be found
		tag   string
	}{
		{"file into the config's root", []string{"--config", cfgPath, archive}, "", 0, cfgRoot, "docker.io/cmd/file:1"},
		{"stdin into --root", []string{"--config", cfgPath, "--root", flagRoot, "--name", "cmd/stdin:2", "-"}, archive, 0, flagRoot, "docker.io/cmd/stdin:2"},
		{"layout with a base name", []string{"--root", flagRoot, "--base-name", "cmd/layout", layout}, "", 0, flagRoot, "docker.io/cmd/layout:3"},
		{"layout without a base name", []string{"--root", flagRoot, layout}, "", 1, "", ""},
		{"no such file", []string{"--root", flagRoot, filepath.Join(dir, "missing.tar")}, "", 1, "", ""},
		{"no such config", []string{"--config", filepath.Join(dir, "missing.toml"), archive}, "", 1, "", ""},
		{"no archive", []string{"--root", flagRoot}, "", 2, "", ""},
		{"two archives", []string{"--root", flagRoot, archive, archive}, "", 2, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.stdin != "" {
				f, err := os.Open(tc.stdin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				saved := os.Stdin
				os.Stdin = f
				defer func() { os.Stdin = saved }()
			}
			if code := run(append([]string{"image", "import"}, tc.args...)); code != tc.code {
				t.Fatalf("exit code %d, want %d", code, tc.code)
			}
			if tc.root == "" {
				return
			}
			s, _, err := image.Open(filepath.Join(tc.root, "images"), config.Registry{}, config.Image{}, image.NodePlatform(), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(tc.tag)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := img.ConfigName(); got.ID != want.String() {
				t.Fatalf("%s is %s, want %s", tc.tag, got.ID, want)
			}
		})
	}
	for _, root := range []string{cfgRoot, flagRoot} {
		if left, _ := os.ReadDir(filepath.Join(root, "images", "import")); len(left) != 0 {
			t.Errorf("%s/images/import holds %d leftovers", root, len(left))
		}
	}
	if code := run([]string{"image", "export"}); code != 2 {
		t.Errorf("crib image export: exit code %d, want 2", code)
	}
	if !strings.Contains(imageUsage, "crib image import") {
		t.Error("usage does not name the command")
	}
}
