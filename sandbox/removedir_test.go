package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// A daemon killed in the middle of writing one of the pod's files leaves
// the write's temp file in the pod's directory: the pod must still be
// removable (the fault test found one that never was). Anything else
// unexpected still stops the removal.
func TestRemoveDirTakesInterruptedWrites(t *testing.T) {
	for _, tc := range []struct {
		extra string
		ok    bool
	}{
		{".resolv.conf.tmp-3738535596", true},
		{".hosts.tmp-1", true},
		{"unexpected", false},
	} {
		dir := filepath.Join(t.TempDir(), "pod")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p := &Pod{ID: "p", Dir: dir, ResolvPath: filepath.Join(dir, "resolv.conf"),
			HostsPath: filepath.Join(dir, "hosts"), HostnamePath: filepath.Join(dir, "hostname")}
		for _, f := range []string{p.ResolvPath, p.HostsPath, p.HostnamePath, filepath.Join(dir, tc.extra)} {
			if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := removeDir(p)
		_, statErr := os.Stat(dir)
		if tc.ok && (err != nil || !os.IsNotExist(statErr)) {
			t.Errorf("with %s left: removeDir = %v, directory: %v", tc.extra, err, statErr)
		}
		if !tc.ok && (err == nil || statErr != nil) {
			t.Errorf("with %s left: removeDir = %v, directory: %v; want an error and the directory kept", tc.extra, err, statErr)
		}
	}
}
