package cgroup2

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shared inotify instance of the OOM watches, on plain files: no
// cgroup, no privilege.

// touch modifies path with one write: one IN_MODIFY (a truncation would
// make a second).
func touch(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
}

func heard(t *testing.T, c <-chan string, want string) {
	t.Helper()
	select {
	case got := <-c:
		if got != want {
			t.Fatalf("heard %s, want %s", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s not heard", want)
	}
}

func quiet(t *testing.T, c <-chan string) {
	t.Helper()
	select {
	case got := <-c:
		t.Fatalf("heard %s, want nothing", got)
	case <-time.After(50 * time.Millisecond):
	}
}

func instance(w *oomWatches) *inotifyInstance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// watchFiles makes files a and b in a temp dir and returns their paths
// and a watch function whose callbacks send the file's name to events and
// return more().
func watchFiles(t *testing.T, w *oomWatches) (dir, a, b string, events chan string,
	watch func(path string, more func() bool) func()) {
	dir = t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	touch(t, a)
	touch(t, b)
	events = make(chan string, 16)
	watch = func(path string, more func() bool) func() {
		stop, err := w.add(path, func() (func() bool, error) {
			return func() bool { events <- filepath.Base(path); return more() }, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return stop
	}
	return dir, a, b, events, watch
}

func TestOOMWatchesShareAndClose(t *testing.T) {
	var w oomWatches
	dir, a, b, events, watch := watchFiles(t, &w)
	always := func() bool { return true }
	stopA := watch(a, always)
	first := instance(&w)
	stopB := watch(b, always)
	if instance(&w) != first || first == nil {
		t.Fatal("the second watch opened an instance of its own")
	}
	touch(t, b)
	heard(t, events, "b")
	quiet(t, events)
	touch(t, a)
	heard(t, events, "a")

	// The same file twice is refused, and the first watch goes on.
	if _, err := w.add(a, func() (func() bool, error) { return always, nil }); err == nil || !strings.Contains(err.Error(), "already watched") {
		t.Fatalf("a second watch of a: %v, want refused", err)
	}
	// A setup that fails leaves no watch.
	c := filepath.Join(dir, "c")
	touch(t, c)
	if _, err := w.add(c, func() (func() bool, error) { return nil, errors.New("no count") }); err == nil {
		t.Fatal("a failed setup made a watch")
	}
	touch(t, c)
	touch(t, a)
	heard(t, events, "a")

	// Stopping both closes the instance; the next watch opens another.
	stopA()
	stopB()
	stopB()
	if instance(&w) != nil {
		t.Fatal("the instance outlived its last watch")
	}
	stopC := watch(c, always)
	defer stopC()
	if second := instance(&w); second == nil || second == first {
		t.Fatal("no new instance after the last one closed")
	}
	touch(t, c)
	heard(t, events, "c")
}

func TestOOMWatchesEnd(t *testing.T) {
	var w oomWatches
	_, a, b, events, watch := watchFiles(t, &w)
	// a's callback asks for no more; b's file is removed (IN_IGNORED).
	watch(a, func() bool { return false })
	watch(b, func() bool { return true })
	touch(t, a)
	heard(t, events, "a")
	touch(t, a)
	quiet(t, events)
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); instance(&w) != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the instance outlived its watches: one ended by its callback, one by its file's removal")
		}
	}
}

// TestOOMWatchesOverflow: when the shared queue overflows, every watch
// looks again.
func TestOOMWatchesOverflow(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	touch(t, a)
	var w oomWatches
	events := make(chan string, 16)
	if _, err := w.add(a, func() (func() bool, error) {
		return func() bool { events <- "a"; return true }, nil
	}); err != nil {
		t.Fatal(err)
	}
	w.everyWatch(instance(&w))
	heard(t, events, "a")
}
