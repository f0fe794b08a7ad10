package layer

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crib-runtime/crib/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestApplyEscapes feeds layers that try to reach outside the layer dir. Each
// either fails or lands inside; checkOutside then verifies the parent dir,
// where relative escapes arrive first, is untouched, and absolute ones are
// checked at the host path they name.
func TestApplyEscapes(t *testing.T) {
	testutil.RequireRoot(t)
	// A name no one else uses, for the probes into the host's /etc and /tmp.
	rnd := make([]byte, 8)
	_, _ = rand.Read(rnd)
	probe := "crib-layer-escape-" + hex.EncodeToString(rnd)
	hostProbes := []string{filepath.Join("/etc", probe), filepath.Join("/tmp", probe)}
	t.Cleanup(func() {
		for _, p := range hostProbes {
			os.RemoveAll(p)
		}
	})

	tests := []struct {
		name    string
		ents    func(s *sandbox) []ent
		wantErr string   // "" when the layer must apply, confined
		inside  []string // names that must exist inside the layer afterwards
	}{
		{
			name:    "dot-dot name",
			ents:    func(*sandbox) []ent { return []ent{fileEnt("../sentinel", "pwned")} },
			wantErr: `apply layer entry "../sentinel": name "../sentinel" escapes the layer root`,
		},
		{
			name:    "dot-dot in the middle",
			ents:    func(*sandbox) []ent { return []ent{fileEnt("a/../../evil", "x")} },
			wantErr: "escapes the layer root",
		},
		{
			name:    "absolute dot-dot",
			ents:    func(*sandbox) []ent { return []ent{fileEnt("/../evil", "x")} },
			wantErr: "escapes the layer root",
		},
		{
			name:    "dot-dot directory",
			ents:    func(*sandbox) []ent { return []ent{dirEnt("../evil/")} },
			wantErr: "escapes the layer root",
		},
		{
			name:   "absolute name is made relative",
			ents:   func(*sandbox) []ent { return []ent{fileEnt("/etc/"+probe, "x"), fileEnt("//tmp/"+probe, "x")} },
			inside: []string{"etc/" + probe, "tmp/" + probe},
		},
		{
			name:    "absolute symlink out, then write through it",
			ents:    func(s *sandbox) []ent { return []ent{symEnt("a", s.parent), fileEnt("a/sentinel", "pwned")} },
			wantErr: "not a directory",
		},
		{
			name:    "symlink to /etc, then write through it",
			ents:    func(*sandbox) []ent { return []ent{symEnt("a", "/etc"), fileEnt("a/"+probe, "pwned")} },
			wantErr: "not a directory",
		},
		{
			name: "symlink to /etc lands in the layer's own etc",
			ents: func(*sandbox) []ent {
				return []ent{dirEnt("etc/"), symEnt("a", "/etc"), fileEnt("a/"+probe, "inside")}
			},
			inside: []string{"etc/" + probe},
		},
		{
			name:   "relative symlink up, then write through it",
			ents:   func(*sandbox) []ent { return []ent{symEnt("a", "../../.."), fileEnt("a/"+probe, "x")} },
			inside: []string{probe},
		},
		{
			name: "relative symlink up, then a directory and a device through it",
			ents: func(*sandbox) []ent {
				return []ent{symEnt("a", ".."), dirEnt("a/tmp/"), devEnt("a/tmp/"+probe, tar.TypeChar, 1, 3), devEnt("a/fifo", tar.TypeFifo, 0, 0)}
			},
			inside: []string{"tmp/" + probe, "fifo"},
		},
		{
			name: "symlink chain",
			ents: func(*sandbox) []ent {
				return []ent{symEnt("a", "b"), symEnt("b", "c/../../.."), dirEnt("c/"), fileEnt("a/x", "x")}
			},
			inside: []string{"x"},
		},
		{
			name: "symlink inside a subdirectory pointing up",
			ents: func(*sandbox) []ent {
				return []ent{dirEnt("d/"), symEnt("d/l", "../../../.."), dirEnt("d/l/y/"), fileEnt("d/l/y/z", "z")}
			},
			inside: []string{"y/z"},
		},
		{
			name: "symlink over the target of a later chown",
			ents: func(s *sandbox) []ent {
				return []ent{symEnt("a", s.sentinel), dirEnt("a/").with(func(h *tar.Header) { h.Uid, h.Mode = 1000, 0o777 })}
			},
			inside: []string{"a"},
		},
		{
			name:   "file over a symlink out writes the file, not the target",
			ents:   func(s *sandbox) []ent { return []ent{symEnt("a", s.sentinel), fileEnt("a", "pwned")} },
			inside: []string{"a"},
		},
		{
			name: "hard link over a symlink out",
			ents: func(s *sandbox) []ent {
				return []ent{fileEnt("f", "mine"), symEnt("a", s.sentinel), linkEnt("a", "f")}
			},
			inside: []string{"a"},
		},
		{
			name: "xattrs and times on a symlink out stay on the symlink",
			ents: func(s *sandbox) []ent {
				return []ent{symEnt("a", s.sentinel).with(func(h *tar.Header) {
					h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.evil": "1"}
					h.Uid = 1000
				})}
			},
			inside: []string{"a"},
		},
		{
			name:    "hard link to a dot-dot target",
			ents:    func(*sandbox) []ent { return []ent{linkEnt("h", "../sentinel")} },
			wantErr: `hard link target: name "../sentinel" escapes the layer root`,
		},
		{
			name:    "hard link to an absolute target outside",
			ents:    func(s *sandbox) []ent { return []ent{linkEnt("h", s.sentinel)} },
			wantErr: "no such file or directory",
		},
		{
			name:    "hard link through a symlink up",
			ents:    func(*sandbox) []ent { return []ent{symEnt("a", "../.."), linkEnt("h", "a/sentinel")} },
			wantErr: `hard link target "a/sentinel": no such file or directory`,
		},
		{
			name:    "hard link through an absolute symlink out",
			ents:    func(s *sandbox) []ent { return []ent{symEnt("a", s.parent), linkEnt("h", "a/sentinel")} },
			wantErr: "no such file or directory",
		},
		{
			name: "hard link through a symlink that stays inside",
			ents: func(*sandbox) []ent {
				return []ent{dirEnt("d/"), fileEnt("d/f", "x"), symEnt("l", "/d"), linkEnt("h", "l/f")}
			},
			inside: []string{"h"},
		},
		{
			name:    "whiteout through a symlink out",
			ents:    func(s *sandbox) []ent { return []ent{symEnt("a", s.parent), fileEnt("a/.wh.sentinel", "")} },
			wantErr: "not a directory",
		},
		{
			name:   "opaque marker through a symlink up marks the root",
			ents:   func(*sandbox) []ent { return []ent{symEnt("a", "../.."), fileEnt("a/.wh..wh..opq", "")} },
			inside: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := s.apply(t, tt.ents(s)...)
			t.Logf("Apply: %v", err)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Apply: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Apply: no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Apply: %v, want an error containing %q", err, tt.wantErr)
			}
			for _, name := range tt.inside {
				if !s.exists(name) {
					t.Errorf("%s missing inside the layer", name)
				}
			}
			s.checkOutside(t)
			for _, p := range hostProbes {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was created on the host", p)
				}
			}
		})
	}
}

// TestApplySymlinkOutKeepsTargetMetadata checks that chown, chmod, xattrs
// and times of a symlink entry pointing outside all stay on the symlink.
func TestApplySymlinkOutKeepsTargetMetadata(t *testing.T) {
	testutil.RequireRoot(t)
	s := newSandbox(t)
	_, err := s.apply(t, symEnt("a", s.sentinel).with(func(h *tar.Header) {
		h.Uid, h.Gid = 1234, 1234
		h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.evil": "1"}
	}))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	st := s.lstat(t, "a")
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Uid != 1234 {
		t.Errorf("a: mode %o uid %d, want a symlink owned by 1234", st.Mode, st.Uid)
	}
	if _, ok := xattr(t, s.sentinel, "trusted.evil"); ok {
		t.Error("the xattr reached the symlink's target")
	}
	s.checkOutside(t)
}
