package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenStoreRemovesKilledWrite: the temp file of a record write that a
// daemon kill cut short is removed when the store opens again; it was
// skipped and stayed for ever (the fault test, test/faults, found one left
// after 50 daemon kills).
func TestOpenStoreRemovesKilledWrite(t *testing.T) {
	dir := t.TempDir()
	temp := filepath.Join(dir, ".0123.json.tmp-42")
	if err := os.WriteFile(temp, []byte(`{"version":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(temp); !os.IsNotExist(err) {
		t.Fatalf("the temp file of a killed write is still there: %v", err)
	}
}
