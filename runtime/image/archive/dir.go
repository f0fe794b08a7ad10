package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// layoutDir is an OCI image layout directory. Every name is resolved by
// the kernel inside it (RESOLVE_IN_ROOT): a symlink in the layout, such as
// blobs/sha256/<hex> -> /etc/shadow, resolves within the layout, never to
// the host's file.
type layoutDir struct {
	path   string
	fd     int // O_PATH
	budget *budget
}

func openDir(path string, b *budget) (*layoutDir, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", path, err)
	}
	return &layoutDir{path: path, fd: fd, budget: b}, nil
}

func (d *layoutDir) close() error { return unix.Close(d.fd) }

func (d *layoutDir) has(name string) bool {
	fd, err := resolve.InRoot(d.fd, name, unix.O_PATH, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// open opens a regular file for reading. O_PATH first: nothing is opened
// for reading (a FIFO would block, a device node would reach its driver)
// before fstat says it is a regular file; the very inode resolved is then
// reopened through /proc.
func (d *layoutDir) open(name string) (*os.File, int64, error) {
	fd, err := resolve.InRoot(d.fd, name, unix.O_PATH, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, 0, fmt.Errorf("%s is missing from the layout: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open %s in %s: %w", name, d.path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, 0, fmt.Errorf("stat %s in %s: %w", name, d.path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, 0, fmt.Errorf("%s is not a regular file: %w", name, errdefs.ErrInvalidArgument)
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s in %s: %w", name, d.path, err)
	}
	return f, st.Size, nil
}

func (d *layoutDir) stat(name string) (int64, error) {
	f, size, err := d.open(name)
	if err != nil {
		return 0, err
	}
	f.Close()
	return size, nil
}

func (d *layoutDir) read(name string, limit int64, why string) ([]byte, error) {
	f, size, err := d.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The file may grow after the fstat: read no more than the limit.
	var data []byte
	if size <= limit {
		data, err = io.ReadAll(io.LimitReader(f, limit+1))
		size = max(size, int64(len(data)))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", name, d.path, err)
	}
	if size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d (%s): %w", name, size, limit, why, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// put copies the blob, size bytes as its descriptor says, charged to the
// budget before a byte is written. It reads at most one byte more, so a
// file that grows meanwhile (or is sparse and larger than it claimed) is
// found out by its size without being copied whole.
func (d *layoutDir) put(ctx context.Context, name, dst string, size int64) (string, int64, error) {
	f, got, err := d.open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	if got != size {
		return "", 0, fmt.Errorf("%s is %d bytes, its descriptor says %d: %w", name, got, size, errdefs.ErrDataLoss)
	}
	if err := d.budget.take(size); err != nil {
		return "", 0, fmt.Errorf("copy %s from %s: %w", name, d.path, err)
	}
	digest, n, err := writeHashed(dst, ctxReader{ctx, io.LimitReader(f, size+1)})
	if err != nil {
		return "", 0, fmt.Errorf("copy %s from %s: %w", name, d.path, err)
	}
	return digest, n, nil
}
