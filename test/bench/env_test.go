package bench

import (
	"testing"

	"github.com/crib-runtime/crib/test/harness"
)

// newEnv is a crib daemon's env at the daemon's default log level, as
// containerd runs at its own default: the tests' level logs every RPC.
func newEnv(b *testing.B) *harness.Env {
	b.Helper()
	e := harness.NewEnv(b)
	e.LogLevel = 2
	e.WriteConfig("")
	return e
}
