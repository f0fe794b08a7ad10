package cgroup2_test

import (
	"os"
	"path/filepath"
)

// wrapMkdirBreak makes file a dangling symlink in every new cgroup, so that
// writing it fails.
func wrapMkdirBreak(mkdir func(string) error, file string) func(string) error {
	return func(dir string) error {
		if err := mkdir(dir); err != nil {
			return err
		}
		p := filepath.Join(dir, file)
		os.Remove(p)
		return os.Symlink("nonexistent", p)
	}
}
