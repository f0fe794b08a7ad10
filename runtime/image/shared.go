package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/statefile"
)

// A store directory is shared by processes: the daemon, and `crib image
// import` run beside it or with no daemon at all (while a node image is
// built). The rules that make that safe:
//
//   - Whoever changes images.json or deletes content holds an exclusive
//     flock on <dir>/lock (lockIndex) and re-reads images.json under it
//     before changing it, so no process writes over another's change and
//     no collection misses an image committed by another process.
//   - Only the daemon collects: it alone knows the layers its containers
//     pin and its running pulls hold. An importer adds, never deletes.
//   - An importer works in a private directory under import/, locked by
//     it, and moves content into blobs/ and layers/ only under the index
//     lock, in the same hold that writes the index: a collection sees the
//     content either absent or referenced, unless the import failed after
//     moving some in. The importer leaves that content (a pull of the
//     daemon may have found it there and be about to use it); the
//     daemon's next collection records it (scan) and deletes it if
//     nothing uses it, as it does at Open.
//   - The daemon's pulls rename content in without the file lock (they
//     hold it in memory): an import that finds a layer landed between its
//     check and its rename takes that copy, as a pull takes another's.
//   - Readers (List, Get, lookups) take no file lock: images.json is
//     replaced by rename, so a read finds the old or the new document.
//     Each compares the file's identity with what it last read (a stat)
//     and reads it again when it changed: the daemon sees an import
//     without a restart, at the cost of one stat per call.

// fileID identifies one version of images.json: every write renames a new
// file into place, so a new version has a new inode, and the times guard
// against the inode number being reused.
type fileID struct {
	dev, ino, size   uint64
	mtimeNs, ctimeNs int64
}

func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino, size: uint64(st.Size),
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}, nil
}

// lockIndex takes the store's file lock, then s.mu, and brings the index
// up to date with images.json. unlock releases both. The file lock comes
// first so that no goroutine holds s.mu (and blocks List) while another
// process holds the file lock. Each call opens the lock file anew: flocks
// belong to open file descriptions, so two goroutines of one process
// exclude each other too.
func (s *Store) lockIndex() (unlock func(), err error) {
	f, err := s.flock()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.refreshLocked(); err != nil {
		s.mu.Unlock()
		f.Close()
		return nil, err
	}
	return func() {
		s.mu.Unlock()
		f.Close() // releases the flock
	}, nil
}

// flock takes the store's file lock, <dir>/lock.
func (s *Store) flock() (*os.File, error) {
	f, err := lockFile(filepath.Join(s.dir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("lock image store: %w", err)
	}
	return f, nil
}

// lockFile opens (creating it) the file at path and takes an exclusive
// flock on it, waiting for it; closing the file releases it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return f, nil
}

// refreshLocked reads images.json again when another process replaced it
// since this store last read or wrote it, and accounts for the content the
// new index refers to that this store has not seen. On error the index in
// memory stays as it was.
// Preconditions: s.mu is held.
func (s *Store) refreshLocked() error {
	id, err := statID(s.indexPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil // never written: nothing was committed by anyone
	}
	if err != nil {
		return fmt.Errorf("read image index: %w", err)
	}
	if id == s.idxID {
		return nil
	}
	prev := s.idx
	if err := s.load(); err != nil {
		s.idx = prev
		return err
	}
	s.idxID = id
	s.accountLocked()
	return nil
}

// accountLocked records the disk usage of blobs and layers the index
// refers to that this store has not recorded: what another process
// committed. Layers are read from their usage.json, as at Open.
// Preconditions: s.mu is held.
func (s *Store) accountLocked() {
	for _, img := range s.idx.Images {
		blobs := []string{img.ID, img.ManifestDigest}
		for _, l := range img.Layers {
			blobs = append(blobs, l.Digest)
			if _, ok := s.layerUsage[l.ChainID]; !ok {
				s.recordLayer(strings.TrimPrefix(l.ChainID, "sha256:"))
			}
		}
		for _, b := range blobs {
			if _, ok := s.blobUsage[b]; !ok {
				s.recordBlob(strings.TrimPrefix(b, "sha256:"))
			}
		}
	}
}

// recordBlob records the usage of blobs/sha256/<hex>, if it exists.
func (s *Store) recordBlob(hex string) {
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(s.dir, "blobs", "sha256", hex), &st) == nil {
		s.blobUsage["sha256:"+hex] = st.Blocks * 512
	}
}

// recordLayer records the usage of layers/sha256/<hex>, if it exists. A
// layer without its usage file was not committed by this code: it is
// recorded with no size, so that a collection deletes it when unused.
func (s *Store) recordLayer(hex string) {
	dir := filepath.Join(s.dir, "layers", "sha256", hex)
	if !exists(dir) {
		return
	}
	var u layerUsage
	if statefile.ReadJSON(filepath.Join(dir, "usage.json"), &u) != nil {
		u = layerUsage{Bytes: -1}
	}
	s.layerUsage["sha256:"+hex] = u
}

// saveLocked writes the index and remembers the version written, so that
// the next refresh does not read it back.
// Preconditions: s.mu and the file lock (lockIndex) are held.
func (s *Store) saveLocked() error {
	if err := statefile.WriteJSON(s.indexPath(), &s.idx); err != nil {
		return err
	}
	id, err := statID(s.indexPath())
	if err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	s.idxID = id
	return nil
}

// importDir holds the private work directories of imports in progress.
func (s *Store) importDir() string { return filepath.Join(s.dir, "import") }

// clearStaleImports removes the work directories of imports whose process
// ended without removing them (killed): those whose lock nobody holds. An
// import makes and locks its directory under the index lock, which the
// caller holds, so a directory is never seen between the two.
// Preconditions: the file lock (lockIndex) is held.
func (s *Store) clearStaleImports() error {
	entries, err := os.ReadDir(s.importDir())
	if err != nil {
		return fmt.Errorf("clear stale imports: %w", err)
	}
	for _, e := range entries {
		dir := filepath.Join(s.importDir(), e.Name())
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			f.Close()
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			continue // an import at work
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clear stale import %s: %w", dir, err)
		}
	}
	return nil
}
