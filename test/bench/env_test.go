package bench

import (
	"os"
	"testing"

	"github.com/crib-runtime/crib/test/harness"
)

// newEnv is a crib daemon's env at the daemon's default log level, as
// containerd runs at its own default: the tests' level logs every RPC.
// CRIB_BENCH_CONFIG, when set, is TOML tables appended to the daemon's
// config (such as "[shim]\npods_per_shim = 1"), so that one benchmark
// compares crib's settings run by run.
func newEnv(b *testing.B) *harness.Env {
	b.Helper()
	e := harness.NewEnv(b)
	e.LogLevel = 2
	e.WriteConfig(os.Getenv("CRIB_BENCH_CONFIG"))
	return e
}
