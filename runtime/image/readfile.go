package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// ReadFile reads a regular file of an image's merged rootfs (such as
// /etc/passwd, to resolve a user name) without mounting it: layers are
// searched top down, and overlay whiteouts and opaque directories hide what
// lies below them. At most limit bytes are read. A missing file, or one that
// is not a regular file, is ErrNotFound.
//
// Every path is resolved by the kernel inside one layer directory
// (RESOLVE_IN_ROOT), never by joining strings: an image is untrusted, and
// one whose layer holds "etc -> /etc" or "etc/passwd -> /etc/shadow" would
// otherwise make the daemon read the host's files. A symlink is followed
// within the layer that holds it; one whose target lies in another layer
// is not followed across (the file is then not found), which fails closed.
func (s *Store) ReadFile(ref, name string, limit int64) ([]byte, error) {
	dirs, err := s.LayerDirs(ref)
	if err != nil {
		return nil, err
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	for _, dir := range dirs {
		data, found, hides, err := readInLayer(dir, clean, limit)
		if err != nil {
			return nil, fmt.Errorf("read %s in image %s: %w", name, ref, err)
		}
		if found {
			return data, nil
		}
		if hides {
			break
		}
	}
	return nil, fmt.Errorf("%s in image %s: %w", name, ref, errdefs.ErrNotFound)
}

// readInLayer reads name from the layer dir. found is false when this layer
// does not have it; hides then says whether the layer hides it in the
// layers below too.
func readInLayer(dir, name string, limit int64) (data []byte, found, hides bool, err error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, false, fmt.Errorf("open layer %s: %w", dir, err)
	}
	defer unix.Close(root)
	// O_PATH: nothing is opened for reading (a FIFO would block, a device
	// node would reach its driver) before fstat says it is a regular file.
	fd, err := resolve.InRoot(root, name, unix.O_PATH, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		hides, err := hidden(root, name)
		return nil, false, hides, err
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("open %s in layer %s: %w", name, dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, false, false, fmt.Errorf("stat %s in layer %s: %w", name, dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		// A whiteout (0:0 char device), a directory, a device: the merged
		// view has no regular file here, nor in any layer below.
		return nil, false, true, nil
	}
	// Reopen the very inode resolved above, now for reading.
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDONLY|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, false, false, fmt.Errorf("open %s in layer %s: %w", name, dir, err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, false, false, fmt.Errorf("read %s in layer %s: %w", name, dir, err)
	}
	return data, true, true, nil
}

// hidden reports whether a layer without name hides it from the layers
// below: a whiteout of it or of a parent, a non-directory where a parent
// directory would be, an opaque parent directory, or an entry at name that
// did not resolve (a symlink whose target this layer lacks). The walk opens
// one component at a time with O_NOFOLLOW; name is clean, so no component
// is "..", and nothing is followed out of the layer.
func hidden(root int, name string) (bool, error) {
	parts := strings.Split(name, "/")
	cur, err := unix.Dup(root)
	if err != nil {
		return false, err
	}
	defer func() { unix.Close(cur) }()
	for i, part := range parts {
		if i == len(parts)-1 {
			var st unix.Stat_t
			err := unix.Fstatat(cur, part, &st, unix.AT_SYMLINK_NOFOLLOW)
			return err == nil, nil
		}
		// O_DIRECTORY: the kernel refuses a non-directory before any
		// driver's open runs.
		fd, err := unix.Openat(cur, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return true, nil // a whiteout, file or symlink where a directory would be
		}
		if err != nil {
			return false, fmt.Errorf("open %s: %w", strings.Join(parts[:i+1], "/"), err)
		}
		unix.Close(cur)
		cur = fd
		buf := make([]byte, 1)
		if n, err := unix.Fgetxattr(cur, "trusted.overlay.opaque", buf); err == nil && n == 1 && buf[0] == 'y' {
			return true, nil
		}
	}
	return false, nil
}

// CheckDir checks that name is a directory of an image's merged rootfs
// (an image volume's sub path), searching the layers as ReadFile does and
// with the same resolution inside each layer. It returns an error wrapping
// ErrNotFound when the merged view has nothing at name, and one wrapping
// ErrFailedPrecondition when it has something other than a directory. Like
// ReadFile it fails closed on a symlink whose target lies in another layer;
// the init, which resolves the sub path in the mounted view, has the last
// word at start.
func (s *Store) CheckDir(ref, name string) error {
	dirs, err := s.LayerDirs(ref)
	if err != nil {
		return err
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	for _, dir := range dirs {
		isDir, found, hides, err := dirInLayer(dir, clean)
		if err != nil {
			return fmt.Errorf("look up %s in image %s: %w", name, ref, err)
		}
		if found && isDir {
			return nil
		}
		if found {
			return fmt.Errorf("%s in image %s is not a directory: %w", name, ref, errdefs.ErrFailedPrecondition)
		}
		if hides {
			break
		}
	}
	return fmt.Errorf("%s in image %s: %w", name, ref, errdefs.ErrNotFound)
}

// dirInLayer looks name up in the layer dir, as readInLayer does: found
// says whether this layer decides what the merged view has at name, isDir
// what that is; hides, when not found, whether the layer hides name in the
// layers below.
func dirInLayer(dir, name string) (isDir, found, hides bool, err error) {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, false, false, fmt.Errorf("open layer %s: %w", dir, err)
	}
	defer unix.Close(root)
	fd, err := resolve.InRoot(root, name, unix.O_PATH, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		hides, err := hidden(root, name)
		return false, false, hides, err
	}
	if err != nil {
		return false, false, false, fmt.Errorf("open %s in layer %s: %w", name, dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, false, false, fmt.Errorf("stat %s in layer %s: %w", name, dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return true, true, true, nil
	case st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0:
		return false, false, true, nil // a whiteout: nothing here or below
	}
	return false, true, true, nil
}
