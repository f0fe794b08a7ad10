package launch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/nsexec/nsproto"
)

func TestBinaryForPrefersSealedInit(t *testing.T) {
	testutil.RequireRoot(t)
	src, seal := t.TempDir(), t.TempDir()
	t.Cleanup(func() { _ = UnsealBinary(seal) })
	for _, name := range []string{"crib-shim", InitBinaryName} {
		if err := os.WriteFile(filepath.Join(src, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shim, err := SealBinary(filepath.Join(src, "crib-shim"), seal)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, role uint32, want string) {
		t.Helper()
		if got := binaryFor(Options{Binary: shim, Role: role}); got != want {
			t.Errorf("%s, role %d: binaryFor = %s, want %s", when, role, got, want)
		}
	}
	check("no crib-init", nsproto.RoleInit, shim)
	// A writable file is never run: a container could rewrite it.
	plain := filepath.Join(seal, InitBinaryName)
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	check("a plain crib-init", nsproto.RoleExec, shim)
	if err := os.Remove(plain); err != nil {
		t.Fatal(err)
	}
	sealedInit, err := SealBinary(filepath.Join(src, InitBinaryName), seal)
	if err != nil {
		t.Fatal(err)
	}
	check("a sealed crib-init", nsproto.RoleInit, sealedInit)
	check("a sealed crib-init", nsproto.RoleExec, sealedInit)
	check("a sealed crib-init", nsproto.RolePause, shim)
}
