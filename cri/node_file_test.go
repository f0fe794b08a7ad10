package cri

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadNodeFile: a node file (a Localhost seccomp profile) is read only
// if it is a regular file of bounded size, and never through a FIFO, a
// device or a final symlink.
func TestReadNodeFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "p.json")
	os.WriteFile(good, []byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`), 0o644)
	if b, err := readNodeFile(good); err != nil || !strings.Contains(string(b), "ALLOW") {
		t.Fatalf("regular file: %q, %v", b, err)
	}
	if _, err := readNodeFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, make([]byte, maxNodeFile+1), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(good, link)
	for _, p := range []string{big, fifo, "/dev/zero", link} {
		if _, err := readNodeFile(p); err == nil {
			t.Errorf("%s was read", p)
		}
	}
}
