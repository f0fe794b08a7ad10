package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/crib-runtime/crib/test/testregistry"
)

// Regressions of a review of `crib image import`: a small archive must not
// fill the disk, and an import must stop when asked to.

// smallLimits bounds what an archive may spool to 64 MiB.
var smallLimits = Limits{Bytes: 64 << 20, BytesWhy: "the test's", Layers: 128}

// ustarBlock is a tar header block, written by hand: Go's writer drops
// the GNU.sparse records a hostile archive holds.
func ustarBlock(name string, typeflag byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	return append(b, make([]byte, (512-len(b)%512)%512)...)
}

// paxSparseTar is a tar of about 10 kB whose one file is a PAX "GNU
// sparse 1.0" file of 1 TiB, all of it a hole: Go's reader reports it as
// a regular file and expands it to 1 TiB of zeros.
func paxSparseTar() []byte {
	var recs []byte
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", "manifest.json"}, {"GNU.sparse.realsize", "1099511627776"}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 2
		if len(fmt.Sprint(n)) != 2 {
			panic("record length")
		}
		recs = append(recs, fmt.Sprintf("%d%s", n, rec)...)
	}
	var out []byte
	out = append(out, ustarBlock("PaxHeaders/big", 'x', int64(len(recs)))...)
	out = append(out, padBlock(recs)...)
	sparseMap := padBlock([]byte("0\n")) // no data region: all hole
	out = append(out, ustarBlock("GNUSparseFile.0/big", '0', int64(len(sparseMap)))...)
	out = append(out, sparseMap...)
	return append(out, make([]byte, 10240-len(out)%10240)...)
}

// TestSparseEntryRefused: a sparse entry is refused before a byte of it is
// spooled (it wrote ~34 GB, until the disk was full).
func TestSparseEntryRefused(t *testing.T) {
	data := paxSparseTar()
	if tr := tar.NewReader(bytes.NewReader(data)); true {
		hdr, err := tr.Next()
		if err != nil || hdr.Typeflag != tar.TypeReg || hdr.Size != 1<<40 {
			t.Fatalf("the test's tar reads as %+v, %v: want a regular file of 1 TiB", hdr, err)
		}
	}
	var gnu bytes.Buffer
	tw := tar.NewWriter(&gnu)
	must(t, tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeGNUSparse, Format: tar.FormatGNU}))
	must(t, tw.Close())
	for name, data := range map[string][]byte{"pax": data, "old GNU": gnu.Bytes()} {
		t.Run(name, func(t *testing.T) {
			spool := t.TempDir()
			_, err := ReadTar(context.Background(), bytes.NewReader(data), spool, host, smallLimits)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "sparse file") {
				t.Fatalf("err %v, want a sparse file refused", err)
			}
			if entries, _ := os.ReadDir(spool); len(entries) != 0 {
				t.Fatalf("the spool holds %d files", len(entries))
			}
		})
	}
}

// TestSpoolBudget: a gzip bomb (a 32 KiB archive of a 32 MiB file) stops
// at the budget, naming it, and leaves no spool file.
func TestSpoolBudget(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	testregistry.TarFile(t, tw, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	testregistry.TarFile(t, tw, "blobs/sha256/zeros", make([]byte, 32<<20))
	must(t, tw.Close())
	bomb := testregistry.Gzip(t, buf.Bytes())
	spool := t.TempDir()
	lim := Limits{Bytes: 4 << 20, BytesWhy: "the test's limit", Layers: 128}
	_, err := ReadTar(context.Background(), bytes.NewReader(bomb), spool, host, lim)
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "more than 4194304 bytes") ||
		!strings.Contains(err.Error(), "the test's limit") || !strings.Contains(err.Error(), "blobs/sha256/zeros") {
		t.Fatalf("err %v, want the budget named", err)
	}
	entries, _ := os.ReadDir(spool)
	if len(entries) != 1 { // oci-layout, complete
		t.Fatalf("the spool holds %d files, want only the one before the bomb", len(entries))
	}
}

// endless is an entry's content that never ends, and cancels ctx once
// after some bytes of it.
type endless struct {
	n      int
	cancel func()
}

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	if e.n += len(p); e.n > 8<<20 {
		e.cancel()
	}
	return len(p), nil
}

// TestSpoolStopsOnCancel: a cancelled read stops within the entry it
// copies (SIGINT did not stop a sparse entry) and removes its file.
func TestSpoolStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hdr := ustarBlock("blobs/sha256/endless", '0', 1<<40)
	in := io.MultiReader(bytes.NewReader(hdr), &endless{cancel: cancel})
	spool := t.TempDir()
	done := make(chan error, 1)
	go func() {
		_, err := ReadTar(ctx, in, spool, host, noLimits)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("ReadTar went on after its context was cancelled")
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 0 {
		t.Fatalf("the spool holds %d files", len(entries))
	}
}

// TestLayoutBlobReadToItsSize: a layout blob is copied to its
// descriptor's size and no further (a growing or sparse file was copied
// to its end), and within the budget.
func TestLayoutBlobReadToItsSize(t *testing.T) {
	img := testregistry.Random(t, 1, 16<<10, 7)
	layers, _ := img.Layers()
	digest, _ := layers[0].Digest()
	size, _ := layers[0].Size()
	t.Run("grown", func(t *testing.T) {
		dir := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img})
		a, err := OpenLayout(dir, host, noLimits)
		must(t, err)
		defer a.Close()
		// The blob grows by a sparse 256 MiB once its size was checked.
		must(t, os.Truncate(filepath.Join(dir, "blobs", "sha256", digest.Hex), 256<<20))
		dst := filepath.Join(t.TempDir(), "blob")
		err = a.WriteBlob(context.Background(), a.Images[0].Layers[0], dst)
		if !errors.Is(err, errdefs.ErrDataLoss) || !strings.Contains(err.Error(), fmt.Sprintf("its descriptor says %d", size)) {
			t.Fatalf("err %v, want the size mismatch named", err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Fatalf("the copy is there: %v", err)
		}
	})
	t.Run("over the budget", func(t *testing.T) {
		dir := testregistry.OCILayout(t, t.TempDir(), testregistry.LayoutEntry{Image: img})
		a, err := OpenLayout(dir, host, Limits{Bytes: size - 1, BytesWhy: "the test's", Layers: 128})
		must(t, err)
		defer a.Close()
		dst := filepath.Join(t.TempDir(), "blob")
		err = a.WriteBlob(context.Background(), a.Images[0].Layers[0], dst)
		if !errors.Is(err, errdefs.ErrResourceExhausted) {
			t.Fatalf("err %v, want the budget exceeded", err)
		}
		if _, err := os.Stat(dst); !os.IsNotExist(err) {
			t.Fatalf("the copy is there: %v", err)
		}
	})
}
