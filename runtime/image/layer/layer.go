package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Usage is the disk space the unpacked layer takes.
type Usage struct {
	Bytes  int64 // allocated bytes: sum of st_blocks*512 over every inode, hard links counted once
	Inodes int64 // number of distinct inodes, including the root dir
}

// Limits bound what one layer may unpack to; zero means no bound. A layer
// is untrusted, and its compressed size says little of what it unpacks to
// (gzip reaches 1000:1 on zeros, and an empty file is a 512-byte header
// that compresses to almost nothing), so without them a small blob could
// fill the disk or its inode table before the diff ID check ran at the end.
type Limits struct {
	// Bytes bounds the summed sizes of the layer's regular files, checked
	// from each header before its content is written.
	Bytes int64
	// Entries bounds the number of tar entries, whiteouts and directories
	// included.
	Entries int64
}

const (
	// copyBufferSize is large enough that a big file is written in few
	// syscalls, small enough to allocate once per layer without thought.
	copyBufferSize = 256 << 10

	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	opaqueMarker       = ".wh..wh..opq"
	opaqueXattr        = "trusted.overlay.opaque"
)

// Apply unpacks the layer tar read from r into dir, which must exist and be empty.
//
// Entries are applied in order and a later entry for a path replaces an
// earlier one, except that a directory over a directory only updates its
// metadata. Symlinks the layer itself creates are followed when they appear
// in the parent path of a later entry, clamped to dir as if dir were the root
// (the semantics of containerd and of docker's chrooted unpack). OCI whiteouts
// become overlayfs ones: ".wh.<name>" a 0:0 character device, ".wh..wh..opq"
// the trusted.overlay.opaque=y xattr on its directory. As the image spec says,
// a whiteout hides lower layers only: a path this layer already wrote stays
// (a directory becomes opaque), and a directory after its own whiteout is
// opaque too. aufs metadata (".wh..wh.*") is skipped.
//
// Usage is gathered while writing; a directory that a crafted layer makes
// unreachable by its name (by replacing a symlink on its path) is left out
// of it and keeps the mtime of its last change.
//
// A layer past lim fails with errdefs.ErrResourceExhausted.
//
// On error nothing is cleaned up: the caller removes dir.
func Apply(ctx context.Context, dir string, r io.Reader, lim Limits) (Usage, error) {
	if err := checkEmpty(dir); err != nil {
		return Usage{}, err
	}
	a, err := newApplier(ctx, dir)
	if err != nil {
		return Usage{}, err
	}
	defer a.close()

	tr := tar.NewReader(r)
	var entries, bytes int64
	for {
		// Checked between entries only: a file's copy is bounded by its
		// size in the tar, and a caller that must stop mid-file can make
		// r fail.
		if err := ctx.Err(); err != nil {
			return Usage{}, fmt.Errorf("apply layer: %w", err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Usage{}, fmt.Errorf("apply layer: read tar: %w", err)
		}
		entries++
		if lim.Entries > 0 && entries > lim.Entries {
			return Usage{}, fmt.Errorf("apply layer: more than %d entries (entry %q): %w", lim.Entries, hdr.Name, errdefs.ErrResourceExhausted)
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeCont {
			bytes += hdr.Size // tar sizes are below 2^63 each; a sum past it only grows an error
			if lim.Bytes > 0 && (bytes > lim.Bytes || bytes < 0) {
				return Usage{}, fmt.Errorf("apply layer: files larger than %d bytes in all (entry %q of %d bytes): %w",
					lim.Bytes, hdr.Name, hdr.Size, errdefs.ErrResourceExhausted)
			}
		}
		if err := a.apply(hdr, tr); err != nil {
			return Usage{}, fmt.Errorf("apply layer entry %q: %w", hdr.Name, err)
		}
	}
	if err := a.finishDirs(); err != nil {
		return Usage{}, fmt.Errorf("apply layer: %w", err)
	}
	return a.usage(), nil
}

// checkEmpty refuses a non-empty dir: Usage counts only what Apply creates,
// and a leftover from an earlier attempt would silently become layer content.
func checkEmpty(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open layer dir: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read layer dir %s: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("layer dir %s is not empty (has %q)", dir, names[0])
	}
	return nil
}

// apply writes one tar entry.
func (a *applier) apply(hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		// Global PAX records describe the archive, not a file.
		return nil
	case tar.TypeDir, tar.TypeReg, tar.TypeCont, tar.TypeLink, tar.TypeSymlink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	parent, base := splitName(name)

	if strings.Contains(name, whiteoutMetaPrefix) {
		if base == opaqueMarker && !hasMetaComponent(parent) {
			return a.opaque(parent)
		}
		if hasMetaComponent(name) {
			// aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless
			// to overlayfs, so the entry and anything below it is dropped.
			return nil
		}
	}
	if target, ok := strings.CutPrefix(base, whiteoutPrefix); ok {
		return a.whiteout(parent, target)
	}
	if name == "." && hdr.Typeflag != tar.TypeDir {
		return errors.New("entry would replace the layer root")
	}
	if err := checkOwner(hdr); err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return a.mkdir(hdr, name, parent, base)
	case tar.TypeReg, tar.TypeCont:
		// POSIX lets a reader treat a contiguous file as a regular one.
		return a.file(hdr, r, parent, base)
	case tar.TypeLink:
		return a.link(hdr, parent, base)
	default:
		return a.node(hdr, parent, base)
	}
}

// cleanName turns a tar name into a clean path relative to the layer root:
// "." for the root itself, never starting with "/" or "..".
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("name %q contains a NUL byte", name)
	}
	// Strip the leading slashes before cleaning so that "/../x" is reported
	// as escaping rather than silently clamped to "x".
	clean := path.Clean(strings.TrimLeft(name, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("name %q escapes the layer root", name)
	}
	return clean, nil
}

// splitName splits a clean relative name into its parent ("." at the top)
// and its last component.
func splitName(name string) (parent, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ".", name
	}
	return name[:i], name[i+1:]
}

// hasMetaComponent reports whether a component of name is aufs metadata.
func hasMetaComponent(name string) bool {
	for c := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(c, whiteoutMetaPrefix) {
			return true
		}
	}
	return false
}

// checkOwner rejects ids that chown would misread: -1 means "leave
// unchanged" to the kernel, and larger values would be truncated.
func checkOwner(hdr *tar.Header) error {
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) >= math.MaxUint32 || int64(hdr.Gid) >= math.MaxUint32 {
		return fmt.Errorf("invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	return nil
}

// mode is the permission part of a tar mode, setuid, setgid and sticky
// included; some writers also store the file type bits, which chmod rejects.
func mode(hdr *tar.Header) uint32 {
	return uint32(hdr.Mode) & 0o7777
}

// fdWriter writes to a raw fd. It deliberately has no ReadFrom, so that
// io.CopyBuffer uses the applier's buffer instead of the 32 KiB one
// (*os.File).ReadFrom allocates for every file when the source is not a file.
type fdWriter struct {
	fd  int
	err error
}

func (w *fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(w.fd, p[n:])
		if err == unix.EINTR {
			continue
		}
		if err == nil && m == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			w.err = err
			return n, err
		}
		n += m
	}
	return n, nil
}

// writeContent streams the entry's content into fd.
func (a *applier) writeContent(fd int, hdr *tar.Header, r io.Reader) error {
	if hdr.Size == 0 {
		return nil
	}
	w := fdWriter{fd: fd}
	if _, err := io.CopyBuffer(&w, r, a.buf); err != nil {
		if w.err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return fmt.Errorf("read content: %w", err)
	}
	return nil
}
