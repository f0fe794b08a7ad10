package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/nsexec/nsproto"
)

// InitBinaryName is the binary roles init and exec start from when a
// sealed copy of it sits beside Options.Binary (the daemon seals it beside
// crib-shim). It links only nsexec and the Go init, and on amd64 no libc,
// so each container start and exec costs about 2 ms of CPU less than from
// crib-shim (cmd/crib-init).
const InitBinaryName = "crib-init"

// binaryFor returns the binary o's process starts from: InitBinaryName
// beside o.Binary for roles init and exec when it is on a read-only mount
// (SealBinary made it: a plain file is never run, since a container could
// reach it through /proc/<pid>/exe and rewrite it), else o.Binary. The
// pause role stays on o.Binary, whose pages it shares with the shims.
func binaryFor(o Options) string {
	if o.Role == nsproto.RolePause {
		return o.Binary
	}
	p := filepath.Join(filepath.Dir(o.Binary), InitBinaryName)
	var fs unix.Statfs_t
	if unix.Statfs(p, &fs) != nil || fs.Flags&unix.ST_RDONLY == 0 || unix.Access(p, unix.X_OK) != nil {
		return o.Binary
	}
	return p
}

// SealedBinary returns the path of a read-only view of the running crib
// binary under dir, creating it if needed: a bind mount of /proc/self/exe
// remounted read-only (and nosuid, nodev). Containers are started from this
// path, so a process inside one that reaches the binary through
// /proc/<pid>/exe cannot open it for writing (EROFS), which is the
// CVE-2019-5736 attack. It costs two mount(2) calls once per daemon, where a
// sealed memfd copy would cost a copy of the binary (~20 MB) per launcher.
func SealedBinary(dir string) (string, error) {
	return seal("/proc/self/exe", dir, "crib")
}

// SealBinary is SealedBinary for another binary than the running one: the
// daemon seals crib-shim, which every pod's shim and container init run
// from; tests and benchmarks seal the binaries under test. The view is
// dir/<the binary's name>.
func SealBinary(src, dir string) (string, error) {
	return seal(src, dir, filepath.Base(src))
}

func seal(src, dir, name string) (string, error) {
	target := filepath.Join(dir, name)
	var self unix.Stat_t
	if err := unix.Stat(src, &self); err != nil {
		return "", fmt.Errorf("stat %s: %w", src, err)
	}
	if sealed(target, &self) {
		return target, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("seal crib binary: %w", err)
	}
	// A mount of an older binary (the daemon was upgraded) goes first.
	for unix.Unmount(target, unix.MNT_DETACH) == nil {
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o500)
	if err != nil {
		return "", fmt.Errorf("seal crib binary: %w", err)
	}
	f.Close()
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("seal crib binary: bind %s on %s: %w", src, target, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return "", errors.Join(fmt.Errorf("seal crib binary: remount %s read-only: %w", target, err),
			unix.Unmount(target, unix.MNT_DETACH))
	}
	return target, nil
}

// sealed reports whether target is already a read-only view of self.
func sealed(target string, self *unix.Stat_t) bool {
	var st unix.Stat_t
	var fs unix.Statfs_t
	return unix.Stat(target, &st) == nil && st.Dev == self.Dev && st.Ino == self.Ino &&
		unix.Statfs(target, &fs) == nil && fs.Flags&unix.ST_RDONLY != 0
}

// UnsealBinary removes the mounts SealedBinary and SealBinary made in dir.
func UnsealBinary(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unseal crib binaries: %w", err)
	}
	var errs []error
	for _, e := range entries {
		target := filepath.Join(dir, e.Name())
		for unix.Unmount(target, unix.MNT_DETACH) == nil {
		}
		if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unseal %s: %w", target, err))
		}
	}
	return errors.Join(errs...)
}
