package crilog

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// line is one parsed log line.
type line struct {
	Stream  string
	Partial bool
	Content string
}

// parse reads a log file strictly: every line must have the CRI format.
func parse(t testing.TB, data []byte) []line {
	t.Helper()
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("log does not end with a newline: %q", data)
	}
	var out []line
	for _, l := range strings.Split(string(data[:len(data)-1]), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("malformed log line %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("timestamp of %q: %v", l, err)
		}
		if f[1] != Stdout && f[1] != Stderr {
			t.Fatalf("stream of %q", l)
		}
		if f[2] != "F" && f[2] != "P" {
			t.Fatalf("tag of %q", l)
		}
		out = append(out, line{Stream: f[1], Partial: f[2] == "P", Content: f[3]})
	}
	return out
}

func openTest(t testing.TB, max int) (*File, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "ctr", "0.log")
	f, err := Open(dir, path)
	if err != nil {
		t.Fatal(err)
	}
	f.max = max
	t.Cleanup(func() { _ = f.Close() })
	return f, path
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSplitting(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []line
	}{
		{"full lines", []string{"a\nbc\n"}, []line{{Stdout, false, "a"}, {Stdout, false, "bc"}}},
		{"empty line", []string{"\n"}, []line{{Stdout, false, ""}}},
		{"line across writes", []string{"ab", "c", "d\n"}, []line{{Stdout, false, "abcd"}}},
		{"exactly max", []string{"abcd\n"}, []line{{Stdout, false, "abcd"}}},
		{"exactly max across writes", []string{"abcd", "\n"}, []line{{Stdout, false, "abcd"}}},
		{"max plus one", []string{"abcde\n"}, []line{{Stdout, true, "abcd"}, {Stdout, false, "e"}}},
		{"twice max", []string{"abcdefgh\n"}, []line{{Stdout, true, "abcd"}, {Stdout, false, "efgh"}}},
		{"long line in pieces", []string{"ab", "cdefghij", "k\n"},
			[]line{{Stdout, true, "abcd"}, {Stdout, true, "efgh"}, {Stdout, false, "ijk"}}},
		{"no final newline", []string{"a\nbc"}, []line{{Stdout, false, "a"}, {Stdout, true, "bc"}}},
		{"long without newline", []string{"abcdef"}, []line{{Stdout, true, "abcd"}, {Stdout, true, "ef"}}},
		{"carriage return kept", []string{"a\r\n"}, []line{{Stdout, false, "a\r"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, path := openTest(t, 4)
			s := f.Stream(Stdout)
			for _, w := range tc.writes {
				if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			s.Flush()
			if diff := cmp.Diff(tc.want, parse(t, read(t, path))); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRealMaxLine(t *testing.T) {
	f, path := openTest(t, MaxLine)
	s := f.Stream(Stderr)
	long := bytes.Repeat([]byte("x"), MaxLine+10)
	_, _ = s.Write(append(long, '\n'))
	got := parse(t, read(t, path))
	if len(got) != 2 || !got[0].Partial || len(got[0].Content) != MaxLine || got[1].Partial || len(got[1].Content) != 10 {
		t.Fatalf("a %d byte line became %d lines", len(long), len(got))
	}
}

func TestStreamsInterleaveByLine(t *testing.T) {
	f, path := openTest(t, MaxLine)
	out, errs := f.Stream(Stdout), f.Stream(Stderr)
	_, _ = out.Write([]byte("one "))
	_, _ = errs.Write([]byte("warning\n"))
	_, _ = out.Write([]byte("two\n"))
	want := []line{{Stderr, false, "warning"}, {Stdout, false, "one two"}}
	if diff := cmp.Diff(want, parse(t, read(t, path))); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestTimestamp(t *testing.T) {
	f, path := openTest(t, MaxLine)
	f.now = func() time.Time { return time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600)) }
	_, _ = f.Stream(Stdout).Write([]byte("hi\n"))
	if got, want := string(read(t, path)), "2024-05-06T06:08:09.123456789Z stdout F hi\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestReopenAfterRotation(t *testing.T) {
	f, path := openTest(t, MaxLine)
	s := f.Stream(Stdout)
	_, _ = s.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("still old\n"))
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("after\n"))
	if got := parse(t, read(t, path+".1")); len(got) != 2 || got[1].Content != "still old" {
		t.Fatalf("rotated file: %v", got)
	}
	if got := parse(t, read(t, path)); len(got) != 1 || got[0].Content != "after" {
		t.Fatalf("new file: %v", got)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	f, path := openTest(t, MaxLine)
	dir := filepath.Dir(path)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil { // a directory where the file was
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen over a directory succeeded")
	}
	_, _ = f.Stream(Stdout).Write([]byte("kept\n"))
	if got := parse(t, read(t, filepath.Join(dir, "0.log.1"))); len(got) != 1 {
		t.Fatalf("old file after a failed reopen: %v", got)
	}
}

func TestClosedDrops(t *testing.T) {
	f, path := openTest(t, MaxLine)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = f.Stream(Stdout).Write([]byte("lost\n"))
	if len(read(t, path)) != 0 {
		t.Fatal("a closed file was written")
	}
}

// FuzzStream checks, for any input cut into any writes, that the log is
// well formed, no piece exceeds the limit, only the last piece of a line
// is F, P pieces before it are full, and the pieces joined give the input
// back.
func FuzzStream(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), []byte{3, 1})
	f.Add([]byte("abcdefghijklmnop"), []byte{5})
	f.Add([]byte("\n\n\nabcdefg\n"), []byte{0, 9})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		file, path := openTest(t, 5)
		s := file.Stream(Stdout)
		rest := data
		for _, c := range cuts {
			n := min(int(c), len(rest))
			_, _ = s.Write(rest[:n])
			rest = rest[n:]
		}
		_, _ = s.Write(rest)
		s.Flush()
		var rebuilt []byte
		lines := parse(t, read(t, path))
		for i, l := range lines {
			if len(l.Content) > 5 || strings.Contains(l.Content, "\n") {
				t.Fatalf("line %d content %q", i, l.Content)
			}
			last := i == len(lines)-1
			if l.Partial && len(l.Content) != 5 && !last {
				t.Fatalf("short partial piece %q before the end", l.Content)
			}
			rebuilt = append(rebuilt, l.Content...)
			if !l.Partial {
				rebuilt = append(rebuilt, '\n')
			}
		}
		if !bytes.Equal(rebuilt, data) {
			t.Fatalf("rebuilt %q from the log, wrote %q", rebuilt, data)
		}
	})
}

// TestOpenStaysBeneathLogDir: a symlink below the log directory (made by a
// container that mounts the directory) cannot lead the shim's writes out,
// whether it is a directory on the way, the file itself, or appears
// between Open and a Reopen.
func TestOpenStaysBeneathLogDir(t *testing.T) {
	outside := t.TempDir()
	for name, setup := range map[string]func(dir string) error{
		"absolute directory symlink": func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "ctr")) },
		"relative directory symlink": func(dir string) error {
			return os.Symlink(filepath.Join("..", filepath.Base(outside)), filepath.Join(dir, "ctr"))
		},
		"file symlink": func(dir string) error {
			if err := os.Mkdir(filepath.Join(dir, "ctr"), 0o755); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(outside, "0.log"), filepath.Join(dir, "ctr", "0.log"))
		},
		"nested directory symlink": func(dir string) error { return os.Symlink(outside, filepath.Join(dir, "ctr")) },
	} {
		dir := t.TempDir()
		if err := setup(dir); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "ctr", "0.log")
		if name == "nested directory symlink" {
			path = filepath.Join(dir, "ctr", "sub", "0.log")
		}
		if f, err := Open(dir, path); err == nil {
			f.Close()
			t.Errorf("%s: Open succeeded", name)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("%s: Open made %s outside the log directory", name, ents[0].Name())
		}
	}

	// A symlink that stays inside the directory is followed.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "ctr")); err != nil {
		t.Fatal(err)
	}
	f, err := Open(dir, filepath.Join(dir, "ctr", "0.log"))
	if err != nil {
		t.Fatalf("Open through a symlink inside the directory: %v", err)
	}
	defer f.Close()
	// Rotation, then the directory swapped for a symlink out: the reopen
	// fails and keeps the old file.
	if err := os.Rename(filepath.Join(dir, "real", "0.log"), filepath.Join(dir, "real", "0.log.1")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "ctr")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "ctr")); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Error("Reopen through a symlink out of the log directory succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("Reopen made %s outside the log directory", ents[0].Name())
	}
}

func TestOpenRefusesPathOutsideLogDir(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{
		filepath.Join(dir, "..", "x.log"), dir, filepath.Join(dir, "a", "..", "..", "x.log"), "/tmp/x.log", "relative.log",
	} {
		if f, err := Open(dir, p); err == nil {
			f.Close()
			t.Errorf("Open(%s, %s) succeeded", dir, p)
		}
	}
	// Without a directory (a container created before crib kept it) the
	// path is opened as given.
	p := filepath.Join(t.TempDir(), "a", "0.log")
	f, err := Open("", p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}
