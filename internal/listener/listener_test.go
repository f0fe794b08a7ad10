package listener

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListenLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "crib.sock")
	l, err := Listen(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket %v, %v; want a 0660 socket", fi, err)
	}
	if _, err := Listen(path, 0o660); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: got %v, want ErrInUse", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
	l2, err := Listen(path, 0o660)
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	l2.Close()
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crib.sock")
	// A socket file with nobody behind it, as a SIGKILLed daemon leaves.
	raw, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	raw.(*net.UnixListener).SetUnlinkOnClose(false)
	raw.Close()
	l, err := Listen(path, 0o660)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}

func TestForeignListenerRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crib.sock")
	other, err := net.Listen("unix", path) // answers, but holds no lock
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := Listen(path, 0o660); !errors.Is(err, ErrInUse) {
		t.Fatalf("got %v, want ErrInUse", err)
	}
}

func TestNonSocketNotDeleted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crib.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0o660); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("got %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("regular file was touched")
	}
}

// TestSocketBornPrivate checks the socket's mode at the moment bind made it,
// before Listen's chmod: under a permissive process umask it must already
// be closed to other users, or a client could connect in between.
func TestSocketBornPrivate(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	var born fs.FileMode
	afterBind = func(path string) {
		fi, err := os.Lstat(path)
		if err != nil {
			t.Errorf("lstat right after bind: %v", err)
			return
		}
		born = fi.Mode().Perm()
	}
	defer func() { afterBind = nil }()
	for _, mode := range []fs.FileMode{0o600, 0o660} {
		// A directory others may search: the socket itself must be shut.
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "crib.sock")
		l, err := Listen(path, mode)
		if err != nil {
			t.Fatal(err)
		}
		if born&0o077 != 0 {
			t.Errorf("socket born %#o under umask 0: other users could connect before the chmod", born)
		}
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("socket mode after Listen = %v, %v; want %#o", fi.Mode().Perm(), err, mode)
		}
		l.Close()
		// The process umask is untouched: the bind ran under a private one.
		if cur := unix.Umask(0); cur != 0 {
			t.Errorf("process umask changed to %#o", cur)
		}
	}
}

// TestSocketInPrivateDir: in a directory only its owner may search, the socket
// is bound as is (no one else can reach it before the chmod) and still ends
// with the mode asked for.
func TestSocketInPrivateDir(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	var born fs.FileMode
	afterBind = func(path string) {
		if fi, err := os.Lstat(path); err == nil {
			born = fi.Mode().Perm()
		}
	}
	defer func() { afterBind = nil }()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "shim.sock")
	l, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Bound under the process's umask 0, not bindUmask.
	if born != 0o777 {
		t.Errorf("socket born %#o in a private directory; want %#o (no private umask)", born, 0o777)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode after Listen = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestClaim(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nri", "nri.sock")
	c, err := Claim(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("claimed socket's directory: %v, %v; want 0700", fi, err)
	}
	if _, err := Claim(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Claim: got %v, want ErrInUse", err)
	}
	c.Close()

	// Another server answering without the lock (another runtime's NRI).
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Claim(path); !errors.Is(err, ErrInUse) {
		t.Errorf("Claim of an answered socket: got %v, want ErrInUse", err)
	}
	other.Close()

	notSock := filepath.Join(dir, "file")
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Claim(notSock); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Claim of a regular file: got %v, want ErrExist", err)
	}
	if _, err := os.Stat(notSock); err != nil {
		t.Errorf("the regular file went: %v", err)
	}
}

// A socket directory others can write is refused: they could put their own
// socket at the path.
func TestClaimRefusesWritableDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if c, err := Claim(filepath.Join(dir, "nri.sock")); err == nil || !strings.Contains(err.Error(), "only root may") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Claim in a 0777 directory: %v, want a refusal", err)
	}
}

// WithUmask's thread has its own umask; the process keeps its.
func TestWithUmask(t *testing.T) {
	dir := t.TempDir()
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	err := WithUmask(func(int) int { return 0o077 }, func() error {
		return os.WriteFile(filepath.Join(dir, "inside"), nil, 0o666)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "outside"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"inside": 0o600, "outside": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %#o", name, fi.Mode(), err, want)
		}
	}
}
