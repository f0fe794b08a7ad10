package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/crib-runtime/crib/cgroups"
)

// procsDir is the directory of cgroup path where cgroup.procs lists every
// process: the unified hierarchy, or on v1 the pids (else memory, else
// freezer) hierarchy, which crib always writes.
func procsDir(host *cgroups.Host, path string) (string, error) {
	if host.Mode == cgroups.ModeUnified {
		return filepath.Join(host.Unified, path), nil
	}
	ctrls := host.V1Controllers()
	for _, c := range []string{"pids", "memory", "freezer"} {
		if m := ctrls[c]; m != "" {
			return filepath.Join(m, path), nil
		}
	}
	return "", fmt.Errorf("no pids, memory or freezer hierarchy mounted")
}

// cgroupPids lists the processes in path and its descendants.
func cgroupPids(host *cgroups.Host, path string) ([]int, error) {
	dir, err := procsDir(host, path)
	if err != nil {
		return nil, err
	}
	var pids []int
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", path, err)
	}
	return pids, nil
}
