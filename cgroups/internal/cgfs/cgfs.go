// Package cgfs reads and writes cgroup interface files beneath one hierarchy
// root, opened once, so that no path crib builds can leave the hierarchy.
//
// crib keeps these helpers instead of using opencontainers/cgroups' WriteFile
// and ReadFile: those resolve every path against a process-wide handle on
// /sys/fs/cgroup and only accept other roots behind the package-global
// TestMode switch, while crib takes the root as a constructor argument (fake
// trees in t.TempDir(), cgroup2 at /sys/fs/cgroup/unified on hybrid hosts).
// The safety property is the same: openat2(2) with RESOLVE_BENEATH.
//
// Internal to crib; no API compatibility promised.
package cgfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// Root is an open hierarchy root. Cgroup arguments are relative to it
// ("kubepods/pod1/c1", "." for the root).
type Root struct {
	dir  *os.File
	path string
	fake *Fake
}

// Fake stands in for the kernel's side of mkdir(2) and rmdir(2) on
// cgroupfs, which create and drop the interface files of a cgroup. Tests
// (cgroupstest) use it for trees in t.TempDir(); nil means the real kernel.
type Fake struct {
	// Mkdir makes the cgroup directory dir (a full path) with its files.
	Mkdir func(dir string) error
	// Rmdir removes the cgroup directory dir and its files.
	Rmdir func(dir string) error
	// AttachDevices stands in for attaching the v2 device program prog
	// (struct bpf_insn array) to the cgroup directory dir, replacing the
	// one there.
	AttachDevices func(dir string, prog []byte) error
	// Write, when set, sees every interface file write (path is the full
	// path) before the file is written; it returns true for the writes it
	// played the kernel's part in itself (v1 devices.allow and
	// devices.deny, which change devices.list).
	Write func(path, value string) (bool, error)
}

// Open opens the hierarchy mounted at path. fake is nil except in tests.
func Open(path string, fake *Fake) (*Root, error) {
	f, err := os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup hierarchy: %w", err)
	}
	return &Root{dir: f, path: path, fake: fake}, nil
}

// Fake is the fake the root was opened with, nil for the real kernel.
func (r *Root) Fake() *Fake { return r.fake }

// Path is where the hierarchy is mounted.
func (r *Root) Path() string { return r.path }

// Close releases the root handle.
func (r *Root) Close() error { return r.dir.Close() }

var noOpenat2 atomic.Bool

// open opens rel/file beneath the root. openat2 refuses anything resolving
// outside it (RESOLVE_BENEATH) or through /proc magic links.
func (r *Root) open(rel string, flags int) (int, error) {
	if !noOpenat2.Load() {
		fd, err := resolve.Openat2(int(r.dir.Fd()), rel, &unix.OpenHow{
			Flags:   uint64(flags | unix.O_CLOEXEC),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.ENOSYS {
			return fd, err
		}
		noOpenat2.Store(true)
	}
	// Pre-5.6 kernels: paths are validated by cgroups.CleanPath (no "..")
	// and cgroupfs has no symlinks below a mountpoint.
	return unix.Openat(int(r.dir.Fd()), rel, flags|unix.O_CLOEXEC, 0)
}

func join(cg, file string) string {
	if cg == "." || cg == "" {
		return file
	}
	return cg + "/" + file
}

// Write writes value to cg/file in one write(2), as cgroupfs wants. Errors
// name the file, the cgroup and the value; EINVAL, ERANGE and EOVERFLOW
// (the kernel refusing the value) and ENOENT (no such interface file: the
// controller is missing or not enabled) are also errdefs.ErrInvalidArgument.
func (r *Root) Write(cg, file, value string) error {
	if r.fake != nil && r.fake.Write != nil {
		if done, err := r.fake.Write(r.path+"/"+join(cg, file), value); done {
			if err != nil {
				return &WriteError{File: file, Cgroup: "/" + strings.TrimPrefix(cg, "."), Value: value, Err: err}
			}
			return nil
		}
	}
	fd, err := r.open(join(cg, file), unix.O_WRONLY|unix.O_TRUNC)
	if err == nil {
		_, err = unix.Write(fd, []byte(value))
		unix.Close(fd)
	}
	if err != nil {
		return &WriteError{File: file, Cgroup: "/" + strings.TrimPrefix(cg, "."), Value: value, Err: err}
	}
	return nil
}

// WriteError is a failed interface file write.
type WriteError struct {
	File, Cgroup, Value string
	Err                 error
}

func (e *WriteError) Error() string {
	if errors.Is(e.Err, unix.ENOENT) {
		return fmt.Sprintf("write %s for %s (value %q): %v (is the %s controller available and enabled?)",
			e.File, e.Cgroup, e.Value, e.Err, controller(e.File))
	}
	return fmt.Sprintf("write %s for %s (value %q): %v", e.File, e.Cgroup, e.Value, e.Err)
}

// Unwrap exposes the errno and, for refused values, the errdefs kind.
func (e *WriteError) Unwrap() []error {
	switch {
	case errors.Is(e.Err, unix.EINVAL), errors.Is(e.Err, unix.ERANGE),
		errors.Is(e.Err, unix.EOVERFLOW), errors.Is(e.Err, unix.ENOENT):
		return []error{e.Err, errdefs.ErrInvalidArgument}
	}
	return []error{e.Err}
}

func controller(file string) string {
	c, _, _ := strings.Cut(file, ".")
	return c
}

// ReadInto reads cg/file into buf (grown if needed) and returns the bytes.
// One open, read, close: the fast path for stats.
func (r *Root) ReadInto(cg, file string, buf []byte) ([]byte, error) {
	fd, err := r.open(join(cg, file), unix.O_RDONLY)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: r.path + "/" + join(cg, file), Err: err}
	}
	defer unix.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: r.path + "/" + join(cg, file), Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// Read returns cg/file with surrounding white space trimmed.
func (r *Root) Read(cg, file string) (string, error) {
	b, err := r.ReadInto(cg, file, make([]byte, 0, 512))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// OpenFile opens cg/file (or the cgroup cg itself when file is "")
// beneath the root; name is how errors and /proc show it.
func (r *Root) OpenFile(cg, file string, flags int) (*os.File, error) {
	p := cg
	if file != "" {
		p = join(cg, file)
	}
	fd, err := r.open(p, flags)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.path + "/" + p, Err: err}
	}
	return os.NewFile(uintptr(fd), r.path+"/"+p), nil
}

// Exists reports whether cg/file (or the cgroup cg when file is "") exists.
func (r *Root) Exists(cg, file string) bool {
	p := cg
	if file != "" {
		p = join(cg, file)
	}
	fd, err := r.open(p, unix.O_PATH)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// Mkdir makes the cgroup rel; its parent must exist.
func (r *Root) Mkdir(rel string) error {
	var err error
	if r.fake != nil {
		err = r.fake.Mkdir(r.path + "/" + rel)
	} else {
		err = unix.Mkdirat(int(r.dir.Fd()), rel, 0o755)
	}
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			return pe
		}
		return &fs.PathError{Op: "mkdir", Path: r.path + "/" + rel, Err: err}
	}
	return nil
}

// Rmdir removes the cgroup rel (cgroupfs lets rmdir remove a directory
// that still holds interface files).
func (r *Root) Rmdir(rel string) error {
	var err error
	if r.fake != nil {
		err = r.fake.Rmdir(r.path + "/" + rel)
	} else {
		err = unix.Unlinkat(int(r.dir.Fd()), rel, unix.AT_REMOVEDIR)
	}
	if err != nil {
		if pe, ok := err.(*fs.PathError); ok {
			return pe
		}
		return &fs.PathError{Op: "rmdir", Path: r.path + "/" + rel, Err: err}
	}
	return nil
}

// Children lists the child cgroups of rel.
func (r *Root) Children(rel string) ([]string, error) {
	fd, err := r.open(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.path + "/" + rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), r.path+"/"+rel)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
