package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/cgroups"
	"github.com/crib-runtime/crib/internal/pidfd"
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

// signalTree sends sig to every process in path and its descendants,
// through pidfds (internal/pidfd): the container's processes are not the
// shim's children, so one may exit and its pid be reused between the read
// of cgroup.procs and the signal.
func signalTree(host *cgroups.Host, path string, sig unix.Signal) error {
	dir, err := procsDir(host, path)
	if err != nil {
		return err
	}
	var errs []error
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
		procs := filepath.Join(p, "cgroup.procs")
		err = pidfd.SignalListed(func() ([]int, error) {
			b, err := os.ReadFile(procs)
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil // removed meanwhile: its processes are gone
			}
			return pidfd.ParsePids(string(b)), err
		}, sig)
		if err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("signal processes of cgroup %s: %w", path, err)
	}
	return nil
}
