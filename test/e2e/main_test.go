package e2e

import (
	"os"
	"testing"

	"github.com/crib-runtime/crib/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
