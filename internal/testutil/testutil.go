// Package testutil holds helpers shared by crib's tests: privilege checks that
// skip with a reason, or fail under CRIB_TEST_STRICT=1 so a silent skip can
// never pass for a run.
//
// It imports only the standard library and must only be imported from tests.
// Internal to crib; no API compatibility promised.
package testutil

import (
	"os"
	"testing"
)

// Strict reports whether CRIB_TEST_STRICT=1 turns skips into failures.
func Strict() bool { return os.Getenv("CRIB_TEST_STRICT") == "1" }

// SkipOrFail skips the test with reason, or fails it in strict mode.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("CRIB_TEST_STRICT=1 and %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or fails in strict mode) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "test needs root")
	}
}
