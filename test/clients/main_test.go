package clients

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crib-runtime/crib/internal/testutil"
	"github.com/crib-runtime/crib/test/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

// client is the path of a client hack/clients.sh built; `make test` builds
// them first.
func client(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "_output", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(p); err != nil {
		testutil.SkipOrFail(t, name+" is not built: run hack/clients.sh "+name+" ("+err.Error()+")")
	}
	return p
}
