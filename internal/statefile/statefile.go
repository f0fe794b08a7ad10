// Package statefile writes and reads crib's persisted documents: versioned
// JSON files replaced atomically, so a crash at any point leaves either the old
// document or the new one, never a mix.
//
// It imports only the standard library. Internal to crib; no API compatibility promised.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// durability is how much of a replacement survives a power loss.
type durability int

const (
	// volatile: a daemon crash finds the old or the new content; a power
	// loss may leave either, or a torn file.
	volatile durability = iota
	// contentSynced: the new content is on disk before it replaces the
	// old, but the replacement is not: a power loss leaves the old or the
	// new content, each whole.
	contentSynced
	// durable: the new content and the replacement are on disk.
	durable
)

// WriteJSON stores v as JSON at path: write a temp file in the same directory,
// fsync it, rename it over path and fsync the directory, so the rename itself
// survives a power loss.
func WriteJSON(path string, v any) error { return writeJSON(path, v, durable) }

// UpdateJSON is WriteJSON for a document whose old version serves as well
// as the new one after a power loss (a pod's state, which a reboot makes
// NOTREADY whatever it was): the new content is fsynced before the rename,
// so either version is whole, but the directory is not.
func UpdateJSON(path string, v any) error { return writeJSON(path, v, contentSynced) }

// ReplaceJSON is WriteJSON without making the document durable (see
// ReplaceFile): for documents under the state dir.
func ReplaceJSON(path string, v any) error { return writeJSON(path, v, volatile) }

func writeJSON(path string, v any, d durability) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return replace(path, data, 0o600, d)
}

// WriteFile atomically replaces path with data (see WriteJSON).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, durable)
}

// ReplaceFile atomically replaces path with data, without making it
// durable: for runtime state that a reboot discards anyway (files under
// the state dir), where a daemon crash still finds the old or the new
// content and only a power loss, which ends the pods too, loses it.
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	return replace(path, data, perm, volatile)
}

// RemoveTemps removes the temp files that writes into dir left when their
// process was killed (".<name>.tmp-*"): a write removes its own only when
// it fails. Call it where no write into dir can be running (at the
// start of the daemon that owns dir).
func RemoveTemps(dir string) error {
	temps, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		return fmt.Errorf("remove temp files in %s: %w", dir, err)
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove temp files in %s: %w", dir, err)
		}
	}
	return nil
}

func replace(path string, data []byte, perm os.FileMode, d durability) (retErr error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if retErr != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if d >= contentSynced {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("commit %s: %w", path, err)
	}
	if d < durable {
		return nil
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// ReadJSON decodes the document at path into v. A missing file is reported
// with an error matching fs.ErrNotExist.
func ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// ErrVersion is returned by callers that find a document version they do not know.
var ErrVersion = errors.New("unsupported state file version")
