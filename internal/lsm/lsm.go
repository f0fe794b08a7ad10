// Package lsm knows the two Linux security modules a container may ask
// for, AppArmor and SELinux: whether a host enables them, whether an
// AppArmor profile is loaded, and how a process asks that its next
// execve(2) run under a profile or label (the attr files of procfs, which
// is all runc's and go-selinux's helpers do, too).
//
// It imports only the standard library and x/sys, so that the container
// init can use it. Internal to crib; no API compatibility promised.
package lsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotEnabled says the host does not run the security module asked for.
var ErrNotEnabled = errors.New("not enabled on this host")

// Host reads the security modules of the host whose filesystem is at
// Root ("" is "/"; tests give a fake tree).
type Host struct {
	Root string
}

func (h Host) path(p string) string {
	if h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// AppArmorEnabled reports whether AppArmor confines processes on this
// host: the module says it is enabled and its securityfs directory, where
// profiles are loaded, exists (the test runc and libapparmor make).
func (h Host) AppArmorEnabled() bool {
	b, err := os.ReadFile(h.path("/sys/module/apparmor/parameters/enabled"))
	if err != nil || !bytes.HasPrefix(b, []byte("Y")) {
		return false
	}
	st, err := os.Stat(h.path("/sys/kernel/security/apparmor"))
	return err == nil && st.IsDir()
}

// AppArmorLoaded reports whether a profile named name is loaded. Each
// line of the profiles file is "<name> (<mode>)"; a name may hold spaces.
func (h Host) AppArmorLoaded(name string) (bool, error) {
	f, err := os.Open(h.path("/sys/kernel/security/apparmor/profiles"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("apparmor: %w", ErrNotEnabled)
	}
	if err != nil {
		return false, fmt.Errorf("apparmor: read loaded profiles: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndex(line, " ("); i >= 0 && line[:i] == name {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("apparmor: read loaded profiles: %w", err)
	}
	return false, nil
}

// SELinuxEnabled reports whether SELinux is on: its filesystem, selinuxfs,
// is mounted where the policy tools expect it (/sys/fs/selinux, or /selinux
// on old systems) and tells the enforcing mode.
func (h Host) SELinuxEnabled() bool {
	for _, p := range []string{"/sys/fs/selinux/enforce", "/selinux/enforce"} {
		if _, err := os.Stat(h.path(p)); err == nil {
			return true
		}
	}
	return false
}
