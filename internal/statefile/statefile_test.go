package statefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteReadJSON: each writer replaces the document whole, leaves no
// temp file and makes it 0600. (What survives a power loss differs and is
// not observable here.)
func TestWriteReadJSON(t *testing.T) {
	type doc struct {
		Version int
		Name    string
	}
	for name, write := range map[string]func(string, any) error{
		"WriteJSON": WriteJSON, "UpdateJSON": UpdateJSON, "ReplaceJSON": ReplaceJSON,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "doc.json")
			if err := write(path, doc{1, "a"}); err != nil {
				t.Fatal(err)
			}
			if err := write(path, doc{1, "b"}); err != nil {
				t.Fatal(err)
			}
			var got doc
			if err := ReadJSON(path, &got); err != nil {
				t.Fatal(err)
			}
			if got.Name != "b" {
				t.Fatalf("got %+v, want name b", got)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Fatalf("temp files left behind: %v", entries)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v, want 0600", fi.Mode())
			}
		})
	}
}

func TestReadMissing(t *testing.T) {
	var v struct{}
	err := ReadJSON(filepath.Join(t.TempDir(), "none.json"), &v)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

func TestWriteIntoMissingDirFails(t *testing.T) {
	if err := WriteJSON(filepath.Join(t.TempDir(), "no", "doc.json"), 1); err == nil {
		t.Fatal("expected an error")
	}
}
