package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"
)

// maxEntries bounds the entries of a tar: each regular file costs a spool
// file. docker save of a hundred images writes a few thousand.
const maxEntries = 1 << 16

// maxLinks bounds the links followed to resolve one name.
const maxLinks = 16

// maxName bounds an entry's name and a link's target: PATH_MAX, as for
// any path on Linux. Go's tar reader takes PAX names of up to 1 MiB.
const maxName = unix.PathMax

// maxNames bounds the names and link targets the spool keeps, together:
// a docker save of a hundred images has a few thousand entries of a
// hundred bytes.
const maxNames = 16 << 20

// spool is a tar's files, each regular file's content in a file of its own
// under dir, named by the reader (its entry number), never by the tar.
type spool struct {
	dir     string
	entries map[string]*entry
	budget  *budget
	// names counts the bytes of the entries' names and link targets.
	names int
}

// entry is one tar entry other than a directory.
type entry struct {
	file   string // the spool file; "" unless a regular file
	digest string // of the content, computed as it was spooled
	size   int64
	link   string // a link's target, as a clean name in the archive
}

// readTar spools the tar (gzip-compressed or not) that r holds. Links are
// recorded as names in the archive: a symlink's target is taken relative
// to its own directory, a hard link's to the archive's root, and one that
// is absolute or leads outside the archive is refused, so that no name
// can resolve to anything but another entry. Devices, FIFOs and the like
// are recorded without content: naming one is an error, as naming a
// missing file. Sparse files are refused: Go's reader expands one to its
// declared size, so a 10 kB tar would spool a terabyte.
//
// Every read, of the stream and of each entry's content, checks ctx, and
// what is spooled is charged to b: a gzip bomb, or an entry whose content
// the tar reader makes up without reading the stream, stops at the first
// read past either.
func readTar(ctx context.Context, r io.Reader, dir string, b *budget) (*spool, error) {
	br := bufio.NewReaderSize(ctxReader{ctx, r}, 1<<20)
	in := io.Reader(br)
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		defer zr.Close()
		in = zr
	}
	sp := &spool{dir: dir, entries: map[string]*entry{}, budget: b}
	tr := tar.NewReader(in)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) && n > 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err != nil && n == 0 {
			return nil, fmt.Errorf("not a tar archive, plain or gzip-compressed: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return nil, fmt.Errorf("tar: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if n >= maxEntries {
			return nil, fmt.Errorf("more than %d entries: %w", maxEntries, errdefs.ErrInvalidArgument)
		}
		if err := sp.add(hdr, tr, n); err != nil {
			return nil, fmt.Errorf("entry %s: %w", shortName(hdr.Name), err)
		}
	}
	// Read a stream to its end, so that the writer of a pipe (docker save)
	// is not killed by SIGPIPE for the tar's padding.
	if _, err := io.Copy(io.Discard, ctxReader{ctx, in}); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("read to the end: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return sp, nil
}

func (sp *spool) add(hdr *tar.Header, tr *tar.Reader, n int) error {
	if err := checkHeader(hdr); err != nil {
		return err
	}
	if sp.names += len(hdr.Name) + len(hdr.Linkname); sp.names > maxNames {
		return fmt.Errorf("the archive's names and link targets come to more than %d bytes: %w", maxNames, errdefs.ErrInvalidArgument)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" || hdr.Typeflag == tar.TypeDir {
		return nil
	}
	if sp.entries[name] != nil {
		return fmt.Errorf("the archive has two entries named %q: %w", name, errdefs.ErrInvalidArgument)
	}
	e := &entry{}
	switch hdr.Typeflag {
	case tar.TypeReg:
		// Charged up front, before a byte is written: a regular entry
		// holds exactly its size (sparse ones are refused), and the
		// reader beneath tr ends with the context (readTar).
		if err := sp.budget.take(hdr.Size); err != nil {
			return err
		}
		if e.file, e.digest, e.size, err = sp.spoolFile(tr, n); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if path.IsAbs(hdr.Linkname) {
			return fmt.Errorf("symlink to %q: an absolute target: %w", hdr.Linkname, errdefs.ErrInvalidArgument)
		}
		if e.link, err = cleanName(path.Join(path.Dir(name), hdr.Linkname)); err != nil {
			return fmt.Errorf("symlink to %q: %w", hdr.Linkname, err)
		}
	case tar.TypeLink:
		if e.link, err = cleanName(hdr.Linkname); err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
	}
	sp.entries[name] = e
	return nil
}

// checkHeader refuses what no image archive holds and what would cost
// more than it is worth: sparse files (old GNU or PAX GNU.sparse.*), and
// names or link targets longer than a path may be.
func checkHeader(hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return fmt.Errorf("a sparse file (GNU type 'S'): image archives hold none: %w", errdefs.ErrInvalidArgument)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("a sparse file (PAX record %s): image archives hold none: %w", shortName(k), errdefs.ErrInvalidArgument)
		}
	}
	if len(hdr.Name) > maxName {
		return fmt.Errorf("a name of %d bytes, more than PATH_MAX (%d): %w", len(hdr.Name), maxName, errdefs.ErrInvalidArgument)
	}
	if len(hdr.Linkname) > maxName {
		return fmt.Errorf("a link target of %d bytes, more than PATH_MAX (%d): %w", len(hdr.Linkname), maxName, errdefs.ErrInvalidArgument)
	}
	return nil
}

// spoolFile copies the current entry's content into a new spool file.
func (sp *spool) spoolFile(r io.Reader, n int) (file, digest string, size int64, err error) {
	file = filepath.Join(sp.dir, strconv.Itoa(n))
	if digest, size, err = writeHashed(file, r); err != nil {
		return "", "", 0, err
	}
	return file, digest, size, nil
}

// writeHashed copies r into dst, a new file, and returns the sha256
// digest and size of what it wrote; on failure dst is removed. A write
// error is the disk's, and the ends of ctx and of the budget are theirs;
// any other is the archive's (InvalidArgument: one that ends early is
// truncated).
func writeHashed(dst string, r io.Reader) (string, int64, error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && pe.Op == "write" && pe.Path == f.Name():
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, errdefs.ErrResourceExhausted):
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("the archive ends early (truncated): %w", errdefs.ErrInvalidArgument)
	case err != nil:
		err = fmt.Errorf("read: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(dst)
		return "", 0, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

func (sp *spool) has(name string) bool { return sp.entries[name] != nil }

// lookup finds the regular file a name (as written in the archive)
// resolves to among the entries, following links.
func (sp *spool) lookup(name string) (*entry, error) {
	clean, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	for range maxLinks {
		e := sp.entries[clean]
		switch {
		case e == nil:
			return nil, fmt.Errorf("%s is missing from the archive: %w", shortName(name), errdefs.ErrNotFound)
		case e.link != "":
			clean = e.link
		case e.file == "":
			return nil, fmt.Errorf("%s is not a regular file: %w", shortName(name), errdefs.ErrInvalidArgument)
		default:
			return e, nil
		}
	}
	return nil, fmt.Errorf("%s: more than %d links: %w", shortName(name), maxLinks, errdefs.ErrInvalidArgument)
}

func (sp *spool) stat(name string) (int64, error) {
	e, err := sp.lookup(name)
	if err != nil {
		return 0, err
	}
	return e.size, nil
}

func (sp *spool) read(name string, limit int64, why string) ([]byte, error) {
	e, err := sp.lookup(name)
	if err != nil {
		return nil, err
	}
	if e.size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d (%s): %w", name, e.size, limit, why, errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(e.file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return data, nil
}

// put links the spool file: a blob that several names share is spooled
// once and linked as often as it is used, and costs no more bytes.
func (sp *spool) put(_ context.Context, name, dst string, _ int64) (string, int64, error) {
	e, err := sp.lookup(name)
	if err != nil {
		return "", 0, err
	}
	if err := os.Link(e.file, dst); err != nil {
		return "", 0, fmt.Errorf("%s: %w", name, err)
	}
	return e.digest, e.size, nil
}

// peek returns the first bytes of a regular file, at most n.
func (sp *spool) peek(e *entry, n int) ([]byte, error) {
	f, err := os.Open(e.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

func (sp *spool) close() error { return nil }

// budget is what may still be written to files from an archive (Limits.Bytes).
type budget struct {
	limit, left int64
	why         string
}

func newBudget(lim Limits) *budget {
	return &budget{limit: lim.Bytes, left: lim.Bytes, why: lim.BytesWhy}
}

// take charges n bytes, or refuses them when they are more than is left.
func (b *budget) take(n int64) error {
	if n < 0 || n > b.left { // a negative size would add to what is left
		return b.exceeded()
	}
	b.left -= n
	return nil
}

func (b *budget) exceeded() error {
	return fmt.Errorf("the archive's files come to more than %d bytes, the most this import may write (%s): %w",
		b.limit, b.why, errdefs.ErrResourceExhausted)
}

// ctxReader ends reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
