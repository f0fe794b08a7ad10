package layer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestLimits regresses unpacking without bounds: a layer whose files add up
// past Limits.Bytes, or whose entries number more than Limits.Entries, fails
// with ResourceExhausted before the entry over the line is written.
func TestLimits(t *testing.T) {
	ents := []ent{dirEnt("d/"), fileEnt("d/a", "0123456789"), fileEnt("d/b", "0123456789")}
	for _, tc := range []struct {
		name    string
		lim     Limits
		wantErr string // "" for success
		absent  string // a path that must not have been written
	}{
		{"no limits", Limits{}, "", ""},
		{"exact", Limits{Bytes: 20, Entries: 3}, "", ""},
		{"bytes", Limits{Bytes: 15}, `files larger than 15 bytes in all (entry "d/b" of 10 bytes)`, "d/b"},
		{"entries", Limits{Entries: 2}, `more than 2 entries (entry "d/b")`, "d/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Apply(context.Background(), s.dir, bytes.NewReader(buildTar(t, ents...)), tc.lim)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Apply = %v; want ResourceExhausted with %q", err, tc.wantErr)
			}
			if _, err := os.Lstat(filepath.Join(s.dir, tc.absent)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was written past the limit: %v", tc.absent, err)
			}
		})
	}
}
