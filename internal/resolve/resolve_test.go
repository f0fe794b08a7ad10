package resolve

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInRootStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc", "secret"), []byte("inside"), 0o644))
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "abs")))
	must(os.Symlink("../../../../"+filepath.Base(outside)+"/secret", filepath.Join(root, "dotdot")))
	must(os.Symlink("/etc", filepath.Join(root, "etclink")))
	must(os.Symlink("/proc/self/root", filepath.Join(root, "magic")))
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	defer unix.Close(rfd)

	read := func(name string) (string, error) {
		fd, err := InRoot(rfd, name, unix.O_RDONLY, 0)
		if err != nil {
			return "", err
		}
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		b := make([]byte, 16)
		n, err := f.Read(b)
		return string(b[:n]), err
	}
	if got, err := read("/etclink/secret"); err != nil || got != "inside" {
		t.Errorf("etclink/secret = %q, %v; want the root's etc/secret", got, err)
	}
	if got, err := read("../../etc/secret"); err != nil || got != "inside" {
		t.Errorf("../../etc/secret = %q, %v; want the root's etc/secret", got, err)
	}
	for _, name := range []string{"abs", "dotdot"} {
		if got, err := read(name); err == nil {
			t.Errorf("%s read %q: a symlink led outside the root", name, got)
		}
	}
	if _, err := read("magic/etc/hostname"); !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOENT) {
		t.Errorf("magic link: %v, want ELOOP or ENOENT", err)
	}
	fd, err := InRoot(rfd, "/", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatalf("root itself: %v", err)
	}
	unix.Close(fd)
}
