package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/statefile"
	"github.com/crib-runtime/crib/runtime/image/layer"
)

const copyBufferSize = 1 << 20

func (s *Store) ingestDir() string { return filepath.Join(s.dir, "ingest") }

// ensureLayer makes sure the layer's blob is stored and unpacked. Two pulls
// that race for one layer both do the work in private temp files; the first
// rename wins and the other's copy is dropped, so no lock spans a download.
func (s *Store) ensureLayer(ctx context.Context, f *blobFetcher, l Layer) error {
	if exists(s.layerPath(l.ChainID)) {
		return nil
	}
	if !exists(s.blobPath(l.Digest)) {
		if err := s.fetchBlob(ctx, f, l); err != nil {
			return err
		}
	}
	if err := s.unpack(ctx, l); err != nil {
		return err
	}
	// Flush while the other layers still download, so the syncfs before
	// the index write finds little left to do.
	return s.syncfs()
}

// fetchBlob downloads a layer blob into ingest/, checks its size and digest,
// and only then renames it into blobs/.
func (s *Store) fetchBlob(ctx context.Context, fetcher *blobFetcher, l Layer) error {
	who := fetcher.who
	rc, err := fetcher.open(ctx, l.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(s.ingestDir(), "blob-")
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	h := sha256.New()
	buf := make([]byte, copyBufferSize)
	// One byte past the declared size is enough to know the registry sends
	// more than the manifest promised; reading on would let it fill the
	// disk before the digest check could refuse the blob.
	disk := &writeErr{w: f}
	n, err := io.CopyBuffer(io.MultiWriter(disk, h), io.LimitReader(rc, l.Size+1), buf)
	s.observeBytes(n)
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case n > l.Size:
		err = fmt.Errorf("layer %s from %s: blob is larger than the %d bytes its manifest declares: stopped after %d bytes: %w",
			l.Digest, who, l.Size, n, errdefs.ErrDataLoss)
	case disk.err != nil:
		// The disk's, not the registry's: a full disk is not a registry
		// that cannot be reached.
		err = fmt.Errorf("layer %s: store: %w", l.Digest, disk.err)
	case got != l.Digest && (err == nil || n >= l.Size):
		err = fmt.Errorf("layer %s from %s: digest mismatch: got %s (%d bytes), want %s (%d bytes): %w",
			l.Digest, who, got, n, l.Digest, l.Size, errdefs.ErrDataLoss)
	case err != nil:
		err = fmt.Errorf("layer %s: download: %w", l.Digest, classify(err, who, false))
	case n != l.Size:
		err = fmt.Errorf("layer %s from %s: size mismatch: got %d bytes, want %d: %w", l.Digest, who, n, l.Size, errdefs.ErrDataLoss)
	}
	return s.commitBlob(f, l.Digest, err)
}

// writeErr keeps the error of its writer, so that a copy's failure can be
// told apart from the reader's.
type writeErr struct {
	w   io.Writer
	err error
}

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// noSpace classifies an error of a write that found the disk (or the
// quota) full as ResourceExhausted, whichever write of a pull it was: it
// clears once space is freed.
func noSpace(err error) error {
	if (errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)) && !errors.Is(err, errdefs.ErrResourceExhausted) {
		return fmt.Errorf("%w: %w", err, errdefs.ErrResourceExhausted)
	}
	return err
}

// commitBlob closes the ingest file f and renames it to the blob path of
// dgst, or removes it when err (the outcome of writing it) is set.
func (s *Store) commitBlob(f *os.File, dgst string, err error) error {
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.blobPath(dgst))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("store blob %s: %w", dgst, err)
	}
	var st unix.Stat_t
	if unix.Lstat(s.blobPath(dgst), &st) == nil {
		s.mu.Lock()
		s.blobUsage[dgst] = st.Blocks * 512
		s.mu.Unlock()
	}
	return nil
}

// unpack applies a stored layer blob to a fresh directory, checks the diff ID
// of the uncompressed stream and renames the result to the layer's chain ID.
func (s *Store) unpack(ctx context.Context, l Layer) error {
	tmp, lu, err := s.unpackTo(ctx, s.blobPath(l.Digest), l, filepath.Join(s.dir, "tmp"))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, s.layerPath(l.ChainID)); err != nil {
		_ = os.RemoveAll(tmp)
		if !exists(s.layerPath(l.ChainID)) {
			return fmt.Errorf("unpack layer %s: commit: %w", l.Digest, err)
		}
		return nil // another pull committed the same layer first
	}
	s.mu.Lock()
	s.layerUsage[l.ChainID] = lu
	s.mu.Unlock()
	return nil
}

// unpackTo applies the layer blob at blob to a new directory under parent,
// <dir>/diff, checking the diff ID of the uncompressed stream, and records
// its usage in <dir>/usage.json. On failure nothing is left.
func (s *Store) unpackTo(ctx context.Context, blob string, l Layer, parent string) (_ string, _ layerUsage, retErr error) {
	tmp, err := os.MkdirTemp(parent, "layer-")
	if err != nil {
		return "", layerUsage{}, fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return "", layerUsage{}, fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	usage, err := applyBlob(ctx, blob, diff, l, s.limits)
	if err != nil {
		return "", layerUsage{}, fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	lu := layerUsage{Bytes: usage.Bytes, Inodes: usage.Inodes}
	if err := statefile.WriteJSON(filepath.Join(tmp, "usage.json"), lu); err != nil {
		return "", layerUsage{}, fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	return tmp, lu, nil
}

func applyBlob(ctx context.Context, blob, dir string, l Layer, lim layer.Limits) (layer.Usage, error) {
	var usage layer.Usage
	err := readLayer(blob, l, func(r io.Reader) (err error) {
		usage, err = layer.Apply(ctx, dir, r, lim)
		return err
	})
	return usage, err
}

// readLayer streams the uncompressed tar of the layer blob at blob to fn
// (when not nil), then checks the diff ID of the whole stream.
func readLayer(blob string, l Layer, fn func(io.Reader) error) error {
	f, err := os.Open(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	r, closeFn, err := decompress(bufio.NewReaderSize(f, copyBufferSize))
	if err != nil {
		return err
	}
	defer closeFn()
	h := sha256.New()
	tr := io.TeeReader(r, h)
	if fn != nil {
		if err := fn(tr); err != nil {
			return err
		}
	}
	// The tar's trailing zero blocks are part of the diff ID too.
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID {
		return fmt.Errorf("diff ID mismatch: got %s, want %s: %w", got, l.DiffID, errdefs.ErrDataLoss)
	}
	return nil
}

// decompress recognises gzip and zstd by their magic numbers, whatever the
// media type claims; anything else is taken as a plain tar.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { _ = zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}
