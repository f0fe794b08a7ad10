package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// ReadFile reads a regular file of an image's merged rootfs (such as
// /etc/passwd, to resolve a user name) without mounting it: layers are
// searched top down, and overlay whiteouts and opaque directories hide what
// lies below them. At most limit bytes are read. A missing file, or one that
// is not a regular file, is ErrNotFound.
func (s *Store) ReadFile(ref, name string, limit int64) ([]byte, error) {
	dirs, err := s.LayerDirs(ref)
	if err != nil {
		return nil, err
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	for _, dir := range dirs {
		data, found, err := readInLayer(dir, clean, limit)
		if err != nil || found {
			return data, err
		}
		if hidden(dir, clean) {
			break
		}
	}
	return nil, fmt.Errorf("%s in image %s: %w", name, ref, errdefs.ErrNotFound)
}

// readInLayer reads name from one layer; found is false when this layer
// does not have it (so a lower layer may).
func readInLayer(dir, name string, limit int64) (data []byte, found bool, err error) {
	p := filepath.Join(dir, name)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !fi.Mode().IsRegular() {
		// A whiteout (0:0 char device), a directory or a symlink: the merged
		// view has no regular file here.
		return nil, true, fmt.Errorf("%s is not a regular file in the image: %w", name, errdefs.ErrNotFound)
	}
	// O_NOFOLLOW on the last component and no symlinks in the parents
	// (checked by hidden's walk for the layers above): the layer dir is ours.
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, true, err
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, limit))
	return data, true, err
}

// hidden reports whether a layer hides name from the layers below it: an
// opaque directory on its path, or a whiteout of it or of a parent.
func hidden(dir, name string) bool {
	parts := strings.Split(name, "/")
	for i := range parts {
		p := filepath.Join(dir, filepath.Join(parts[:i+1]...))
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return false
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			return true // whiteout
		}
		if i < len(parts)-1 {
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return true // a file or symlink where a directory would be
			}
			buf := make([]byte, 1)
			if n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf); err == nil && n == 1 && buf[0] == 'y' {
				return true
			}
		}
	}
	return false
}
