package bench

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

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

// freshKernel starts a runtime's part of a benchmark from the kernel state
// of a fresh host: dirty pages written back and the page cache, dentries
// and inodes dropped, with nothing lost. Earlier runs leave the kernel
// slower, by as much as a quarter of the CPU per pod here: removed memory
// cgroups kept alive by the page cache they are charged with (every pod
// leaves two to three), and, on ext4 without a journal (this host's /),
// every inode freed in the last 30 s that an allocation must skip.
// CRIB_BENCH_KEEP_CACHES=1 leaves the caches (a host where another
// tenant's writes or a hung mount would make sync(2) wait).
func freshKernel(b *testing.B) {
	if os.Getenv("CRIB_BENCH_KEEP_CACHES") == "1" {
		b.Log("CRIB_BENCH_KEEP_CACHES=1: caches kept; the figures depend on what ran before")
		return
	}
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Fatalf("drop the page cache: %v", err)
	}
}
