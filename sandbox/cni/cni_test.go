package cni

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func TestReady(t *testing.T) {
	conf, bin := t.TempDir(), t.TempDir()
	n := Network{ConfDir: conf, BinDirs: []string{bin}}
	if err := n.Ready(); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("empty dir: got %v, want ErrNoConfig", err)
	}
	write(t, conf, "10-bad.conflist", "{not json", 0o644)
	if err := n.Ready(); !errors.Is(err, ErrNoConfig) || !strings.Contains(err.Error(), "10-bad.conflist") {
		t.Fatalf("bad file: got %v, want ErrNoConfig naming the file", err)
	}
	write(t, conf, "20-net.conflist", `{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap"}]}`, 0o644)
	err := n.Ready()
	if err == nil || !strings.Contains(err.Error(), `plugin "bridge" not found`) {
		t.Fatalf("missing plugin: got %v", err)
	}
	write(t, bin, "bridge", "#!/bin/sh\n", 0o755)
	write(t, bin, "portmap", "#!/bin/sh\n", 0o755)
	if err := n.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	list, err := n.Load()
	if err != nil || list.Name != "pods" {
		t.Fatalf("Load = %v, %v; want network pods", list, err)
	}
}

func TestSingleConfWrapped(t *testing.T) {
	conf := t.TempDir()
	write(t, conf, "05-one.conf", `{"cniVersion":"1.0.0","name":"one","type":"loopback"}`, 0o644)
	list, err := Network{ConfDir: conf}.Load()
	if err != nil || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "loopback" {
		t.Fatalf("Load = %+v, %v", list, err)
	}
}
