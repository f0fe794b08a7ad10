package rdt

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
)

// Reload adds and removes groups, rewrites kept ones in place (their tasks
// and monitoring groups stay), and never touches groups crib did not make.
func TestReload(t *testing.T) {
	h := newFakeHost(t, fullHost())
	cfg := writeClassFile(t, "partitions: {p: {l3Allocation: 100%, classes: {a: {l3Allocation: 50%}, b: , c: }}}")
	c := h.open(t, cfg)
	if err := h.Mkdir("other"); err != nil {
		t.Fatal(err)
	}
	mustPlace(t, c, "a", "ctr-a", 100)
	mustPlace(t, c, "b", "ctr-b", 200)
	mustPlace(t, c, "c", "ctr-c", 300)
	writesB := h.writes["crib-b"]

	if err := os.WriteFile(cfg.ConfigFile, []byte("partitions: {p: {l3Allocation: 100%, classes: {a: {l3Allocation: 25%}, b: , d: }}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "d", RootClass}, c.Classes()); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
	if pids, s := h.group(t, "crib-a"); !cmp.Equal(pids, []int{100}) || !strings.HasPrefix(s, "L3:0=7;1=7\n") {
		t.Errorf("kept class a: pids %v schemata %q, want [100] and its new 25%% mask", pids, s)
	}
	if pids, _ := h.group(t, "crib-b"); !cmp.Equal(pids, []int{200}) || !h.exists("crib-b/mon_groups/ctr-b") {
		t.Errorf("kept class b: pids %v, monitoring group kept %v", pids, h.exists("crib-b/mon_groups/ctr-b"))
	}
	if h.writes["crib-b"] != writesB+1 {
		t.Errorf("class b: %d schemata writes on reload, want 1", h.writes["crib-b"]-writesB)
	}
	if h.exists("crib-c") {
		t.Error("class c still has a group after it left the config")
	}
	if pids, _ := h.group(t, ""); !cmp.Equal(pids, []int{300}) {
		t.Errorf("root tasks %v, want [300] back from the removed class", pids)
	}
	if !h.exists("crib-d") || !h.exists("other") {
		t.Errorf("crib-d exists %v, foreign group exists %v; want both", h.exists("crib-d"), h.exists("other"))
	}
	// The removed class's container goes away: no error.
	if err := c.RemoveMonGroup("c", "ctr-c"); err != nil {
		t.Errorf("RemoveMonGroup of a removed class: %v", err)
	}

	// An invalid file changes nothing.
	if err := os.WriteFile(cfg.ConfigFile, []byte("partitions: {p: {l3Allocation: 200%}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Reload of an invalid file: %v, want InvalidArgument", err)
	}
	if got := c.Classes(); len(got) != 4 || !h.exists("crib-a") {
		t.Errorf("classes %v after a refused reload, want them unchanged", got)
	}
}

func mustPlace(t *testing.T, c *Controller, class, id string, pid int) {
	t.Helper()
	warn, err := c.Place(class, id, pid)
	if err != nil || warn != nil {
		t.Fatalf("Place(%s, %s, %d) = %v, %v", class, id, pid, warn, err)
	}
}

// Groups left by an earlier crib that the config no longer names are
// removed at start-up; groups of configured classes are adopted as they are.
func TestOpenAdoptsAndCleansUp(t *testing.T) {
	h := newFakeHost(t, catOnlyHost())
	for _, g := range []string{"crib-stale", "crib-keep", "theirs"} {
		if err := h.Mkdir(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.writeTask("crib-keep/tasks", "crib-keep", "42"); err != nil {
		t.Fatal(err)
	}
	c := h.open(t, writeClassFile(t, "partitions: {p: {classes: {keep: }}}"))
	if h.exists("crib-stale") || !h.exists("crib-keep") || !h.exists("theirs") {
		t.Errorf("stale %v keep %v theirs %v; want only the stale one gone", h.exists("crib-stale"), h.exists("crib-keep"), h.exists("theirs"))
	}
	if pids, _ := h.group(t, "crib-keep"); !cmp.Equal(pids, []int{42}) {
		t.Errorf("adopted group lost its tasks: %v", pids)
	}
	if diff := cmp.Diff([]string{"keep", RootClass}, c.Classes()); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
}

// A root schemata crib wrote is given back in full when the config stops
// naming the root class.
func TestReloadResetsRoot(t *testing.T) {
	h := newFakeHost(t, fullHost())
	cfg := writeClassFile(t, "partitions: {p: {l3Allocation: 50%, classes: {DEFAULT: }}}")
	c := h.open(t, cfg)
	if _, s := h.group(t, ""); s != "L3:0=3f;1=3f\nMB:0=100;1=100" {
		t.Fatalf("root schemata %q", s)
	}
	if err := os.WriteFile(cfg.ConfigFile, []byte("partitions: {p: {classes: {x: }}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if _, s := h.group(t, ""); s != "L3:0=fff;1=fff\nMB:0=100;1=100" {
		t.Errorf("root schemata %q after reload, want full", s)
	}
}

// Reloading on a node without RDT still checks the file's syntax.
func TestReloadWithoutResctrl(t *testing.T) {
	c, err := Open(writeMountinfo(t, "", ""), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(writeClassFile(t, "partitions: {p: {classes: {a: }}}")); err != nil {
		t.Errorf("valid file: %v", err)
	}
	if err := c.Reload(writeClassFile(t, "partitons: {}")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("misspelt field: %v, want InvalidArgument", err)
	}
	if got := c.Info().ConfigFile; got == "" {
		t.Error("Info does not report the config file")
	}
}
