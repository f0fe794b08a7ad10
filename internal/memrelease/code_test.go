package memrelease

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	maps := filepath.Join(t.TempDir(), "maps")
	content := `00400000-00401000 r--p 00000000 fd:00 131 /usr/bin/crib daemon
00401000-00d92000 r-xp 00001000 fd:00 131 /usr/bin/crib daemon
00d92000-017d7000 r--p 00992000 fd:00 131 /usr/bin/crib daemon
017d7000-017db000 rw-p 013d6000 fd:00 131 /usr/bin/crib daemon
017db000-01862000 rw-p 00000000 00:00 0 
7ffc09f0e000-7ffc09f2f000 rw-p 00000000 00:00 0                          [stack]
01900000-01a00000 r-xp 00000000 fd:00 132 /usr/bin/crib
`
	if err := os.WriteFile(maps, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readOnlyMappings(maps, "/usr/bin/crib daemon")
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uintptr{{0x400000, 0x401000}, {0x401000, 0xd92000}, {0xd92000, 0x17d7000}}
	if len(got) != len(want) {
		t.Fatalf("mappings %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %x, want %x", i, got[i], want[i])
		}
	}
}

// The test binary's own code pages go, and come back only as used.
func TestDropUnusedCode(t *testing.T) {
	before := exeRss(t)
	if err := DropUnusedCode(); err != nil {
		t.Fatal(err)
	}
	if after := exeRss(t); after >= before/2 {
		t.Errorf("the binary's read-only mappings hold %d kB after, %d kB before: want less than half", after, before)
	}
}

// exeRss sums the resident kB of this binary's read-only mappings.
func exeRss(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	total, in := 0, false
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-"):
			in = strings.Join(fields[5:], " ") == exe && fields[1][1] != 'w'
		case in && len(fields) == 3 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	if total == 0 {
		t.Fatalf("no resident read-only mapping of %s", exe)
	}
	return total
}
