package lsm

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Proc writes the calling thread's security attributes under a procfs
// mounted at Dir. The attributes are per thread: the thread that will
// call execve(2) must be the one that writes them (and the one that runs
// the Go code from here to execve must be locked to it).
type Proc struct {
	// Dir is procfs's mount point ("/proc" in the container).
	Dir string
	// Fake skips the check that Dir is a procfs, for tests on a tmpfs tree.
	Fake bool
}

// SetAppArmorExec asks that the thread's next execve run under the
// AppArmor profile name ("exec <name>" to attr/apparmor/exec, or to
// attr/exec on kernels before 5.8 that lack the per-module directory).
// The kernel refuses a profile that is not loaded.
func (p Proc) SetAppArmorExec(name string) error {
	if name == "" || strings.ContainsAny(name, "\x00\n") {
		return fmt.Errorf("apparmor: invalid profile name %q", name)
	}
	err := p.write("apparmor/exec", "exec "+name)
	if errors.Is(err, unix.ENOENT) {
		err = p.write("exec", "exec "+name)
	}
	if err != nil {
		return fmt.Errorf("apparmor: set profile %q for exec: %w", name, err)
	}
	return nil
}

// SetSELinuxExec asks that the thread's next execve run with the SELinux
// process label, and that keys the thread creates until then (a session
// keyring) get it too. The kernel resets both at execve; the socket label
// needs no write, since the exec'd process's sockets take its new label.
func (p Proc) SetSELinuxExec(label string) error {
	if label == "" || strings.ContainsAny(label, "\x00\n") {
		return fmt.Errorf("selinux: invalid label %q", label)
	}
	for _, a := range []string{"exec", "keycreate"} {
		if err := p.write(a, label); err != nil {
			return fmt.Errorf("selinux: set %s label %q: %w", a, label, err)
		}
	}
	return nil
}

// write writes val to thread-self/attr/<attr> in one write(2), as the
// attr files need. The file is opened from the procfs root without
// crossing a mount (RESOLVE_NO_XDEV) and that root is checked to be a
// procfs: a container that mounts over /proc or its attr files would
// otherwise have the write land in a file of its own and the profile
// silently not applied (runc CVE-2019-16884).
func (p Proc) write(attr, val string) error {
	dir, err := unix.Open(p.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", p.Dir, err)
	}
	defer unix.Close(dir)
	if !p.Fake {
		var fs unix.Statfs_t
		if err := unix.Fstatfs(dir, &fs); err != nil {
			return fmt.Errorf("statfs %s: %w", p.Dir, err)
		}
		if fs.Type != unix.PROC_SUPER_MAGIC {
			return fmt.Errorf("%s is not a procfs (type %#x)", p.Dir, fs.Type)
		}
	}
	name := path.Join("thread-self/attr", attr)
	fd, err := unix.Openat2(dir, name, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("open %s/%s: %w", p.Dir, name, err)
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, []byte(val))
	if err != nil {
		return fmt.Errorf("write %s/%s: %w", p.Dir, name, err)
	}
	if n != len(val) {
		return fmt.Errorf("write %s/%s: short write (%d of %d bytes)", p.Dir, name, n, len(val))
	}
	return nil
}
