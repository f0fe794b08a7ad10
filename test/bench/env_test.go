package bench

import (
	"os"
	"testing"

	"github.com/crib-runtime/crib/test/harness"
)

// newEnv is a crib daemon's env at the daemon's default log level, as
// containerd runs at its own default: the tests' level logs every RPC.
// CRIB_BENCH_CONFIG, when set, is TOML for the daemon's config (top-level
// keys or whole tables, such as "[shim]\ngroup = 8"), so that one
// benchmark compares crib's settings run by run.
func newEnv(b *testing.B) *harness.Env {
	b.Helper()
	e := harness.NewEnv(b)
	e.LogLevel = 2
	e.TopLevel = os.Getenv("CRIB_BENCH_CONFIG")
	e.WriteConfig("")
	return e
}
