package testregistry

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"testing"
)

// debsDir is where hack/install-deps.sh downloads, without installing, the
// Debian packages some test images are made of, relative to the repository
// root.
const debsDir = "_output/debs"

// RepoRoot is the root of the crib checkout the test runs in (the directory
// of go.mod above the working directory, which `go test` sets to the
// package's).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// debFile reads one regular file (a path such as "usr/sbin/nginx") from the
// downloaded .deb of pkg.
func debFile(t testing.TB, pkg, name string) []byte {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(RepoRoot(t), debsDir, pkg+"_*.deb"))
	if len(debs) == 0 {
		t.Fatalf("%s/%s_*.deb is missing: hack/install-deps.sh downloads it", debsDir, pkg)
	}
	sort.Strings(debs)
	deb := debs[len(debs)-1]
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v", deb, err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", deb, err)
		}
		if path.Clean(hdr.Name) != "./"+name && path.Clean(hdr.Name) != name {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			t.Fatalf("%s in %s is not a regular file", name, deb)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s from %s: %v", name, deb, err)
		}
		return data
	}
	t.Fatalf("%s has no %s", deb, name)
	return nil
}

// libDirs are where Debian's dynamic loader finds shared libraries.
func libDirs() []string {
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}[goruntime.GOARCH]
	return []string{"/lib/" + triplet, "/usr/lib/" + triplet, "/lib64", "/lib", "/usr/lib"}
}

// withLibraries returns the dynamically linked ELF program data as the file
// dest, plus its dynamic loader and every shared library it loads,
// transitively, copied from this host at the paths the loader searches. So a
// Debian program runs in an image that has no Debian root filesystem.
func withLibraries(t testing.TB, dest string, data []byte) []File {
	t.Helper()
	files := []File{{Name: dest, Mode: 0o755, Data: data}}
	seen := map[string]bool{}
	queue := []string{}
	add := func(data []byte, what string) {
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s is not an ELF file: %v", what, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(p.Open())
			if err != nil {
				t.Fatalf("read the interpreter of %s: %v", what, err)
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !seen[interp] {
				seen[interp] = true
				ld, err := os.ReadFile(interp)
				if err != nil {
					t.Fatalf("the dynamic loader of %s: %v", what, err)
				}
				files = append(files, File{Name: strings.TrimPrefix(interp, "/"), Mode: 0o755, Data: ld})
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatalf("the libraries of %s: %v", what, err)
		}
		queue = append(queue, libs...)
	}
	add(data, dest)
	for len(queue) > 0 {
		lib := queue[0]
		queue = queue[1:]
		if seen[lib] {
			continue
		}
		seen[lib] = true
		found := false
		for _, dir := range libDirs() {
			p := filepath.Join(dir, lib)
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			files = append(files, File{Name: strings.TrimPrefix(p, "/"), Mode: 0o644, Data: b})
			add(b, p)
			found = true
			break
		}
		if !found {
			t.Fatalf("%s needs %s, which is in none of %v", dest, lib, libDirs())
		}
	}
	return files
}

// hostProgram is withLibraries for a program installed on this host.
func hostProgram(t testing.TB, hostPath, dest string) []File {
	t.Helper()
	data, err := os.ReadFile(hostPath)
	if err != nil {
		t.Fatalf("%s is needed for a test image (hack/install-deps.sh): %v", hostPath, err)
	}
	return withLibraries(t, dest, data)
}

// goProgram builds the Go main package pkg (an import path in crib's module)
// as a static binary and returns it.
func goProgram(t testing.TB, pkg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), path.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// withParents returns files with an entry for every directory they are in
// that the list does not already have, before its first use, so that the
// layer says each directory's mode rather than leaving it to the unpacker.
func withParents(files []File) []File {
	have := map[string]bool{}
	for _, f := range files {
		if f.Typ == tar.TypeDir {
			have[strings.TrimSuffix(f.Name, "/")] = true
		}
	}
	var out []File
	for _, f := range files {
		var dirs []string
		for d := path.Dir(strings.TrimSuffix(f.Name, "/")); d != "." && d != "/" && !have[d]; d = path.Dir(d) {
			dirs = append(dirs, d)
			have[d] = true
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			out = append(out, File{Name: dirs[i] + "/", Mode: 0o755, Typ: tar.TypeDir})
		}
		out = append(out, f)
	}
	return out
}
