package initproc

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/resolve"
)

// The working directory and the command come from the pod spec or the
// image (WORKDIR, ENTRYPOINT): untrusted strings resolved by a process that
// is still root with every capability. Two things made that an escape (the
// class of runc's CVE-2024-21626): a host directory fd that stayed open in
// init (the cgroup v2 directory clone3 needs), reachable as
// /proc/self/fd/N/.., and /proc magic links in general (/proc/1/root is the
// host's / when pid 1 of a shared pid namespace lives there). So init first
// closes every fd it did not open itself (closeInheritedFds; nsexec has
// already done so before the Go runtime started, this is the same rule
// where no nsexec ran), and every path from the spec is resolved with
// resolve.Openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) from the container's "/",
// entered with fchdir, and checked with getcwd(2), which prefixes
// "(unreachable)" to a directory outside the process's root.

// anonInodeFSMagic is ANON_INODE_FS_MAGIC (linux/magic.h).
const anonInodeFSMagic = 0x09041934

// closeInheritedFds closes every fd above stdio except keep, before init
// resolves any path from the spec. keep becomes close-on-exec. The Go
// runtime's own netpoller fds (an epoll instance and an eventfd, made at
// start-up when a stdio fd is non-blocking) are anonymous inodes: they have
// no directory to walk from, and closing them would crash the runtime, so
// they stay; they are close-on-exec.
//
// The list comes from /proc/self/fd, opened without following symlinks and
// checked to be procfs: in role exec, /proc is the container's mount and a
// hostile container could put something else there. A container without
// procfs at /proc gets an error rather than an init that cannot tell which
// fds it holds.
func closeInheritedFds(keep ...int) error {
	proc, err := resolve.Openat2(unix.AT_FDCWD, "/proc", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return fmt.Errorf("list inherited fds: open /proc: %w", err)
	}
	defer unix.Close(proc)
	var st unix.Statfs_t
	if err := unix.Fstatfs(proc, &st); err != nil {
		return fmt.Errorf("list inherited fds: statfs /proc: %w", err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("list inherited fds: /proc is not procfs (filesystem type %#x)", st.Type)
	}
	// self is a plain symlink inside procfs (not a magic link); a mount
	// over the fd directory is refused by RESOLVE_NO_XDEV.
	dirfd, err := resolve.Openat2(proc, "self/fd", &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return fmt.Errorf("list inherited fds: open /proc/self/fd: %w", err)
	}
	dir := os.NewFile(uintptr(dirfd), "/proc/self/fd")
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return fmt.Errorf("list inherited fds: %w", err)
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 || fd == dirfd || fd == proc {
			continue
		}
		if kept(fd, keep) {
			unix.CloseOnExec(fd)
			continue
		}
		var fs unix.Statfs_t
		if unix.Fstatfs(fd, &fs) == nil && fs.Type == anonInodeFSMagic {
			unix.CloseOnExec(fd)
			continue
		}
		if err := unix.Close(fd); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("close inherited fd %d: %w", fd, err)
		}
	}
	return nil
}

func kept(fd int, keep []int) bool {
	for _, k := range keep {
		if fd == k {
			return true
		}
	}
	return false
}

// explainResolve adds what ELOOP means here: RESOLVE_NO_MAGICLINKS refused
// a /proc magic link, or symlinks loop.
func explainResolve(err error) error {
	if errors.Is(err, unix.ELOOP) {
		return fmt.Errorf("%w (a /proc magic link such as /proc/self/fd/N or /proc/1/root, or a symlink loop)", err)
	}
	return err
}

// ensureCwd creates a missing working directory, as runc does, so that an
// image WORKDIR or a pod's workingDir that only names a path works. It
// runs after pivot_root and before the root is remounted read-only. Every
// component is resolved in the container's root with magic links refused,
// and created with mkdirat in a parent so resolved: nothing outside the
// root can be reached or created, whoever makes it.
//
// An existing directory is only resolved (as root, so a cwd under a 0700
// root-owned directory still works as it does with runc). Missing
// components are made as the container's user first: fsuid, fsgid and the
// supplementary groups are the spec's for the mkdirat calls, so the kernel
// checks the user's own permissions and the directories belong to the user
// (a non-zero fsuid clears the filesystem capabilities from the effective
// set, capabilities(7) "Effect of user ID changes"; setfsuid(0) restores
// them; setfsuid is per thread and init's thread is locked). Where the user
// may not create them (EACCES/EPERM: a uid 1000 container whose WORKDIR is
// under a root-owned directory) they are made as root and stay root-owned
// 0755, exactly what runc and containerd give, and what Kubernetes users
// of runAsUser with a workingDir the image lacks rely on. Never chown to
// the user what root made: in a root-owned volume that would hand the user
// a writable directory it could not have made itself.
func ensureCwd(cwd string, u specs.User) error {
	if !path.IsAbs(cwd) {
		return fmt.Errorf("working directory %q is not absolute", cwd)
	}
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.close()
	fd, err := r.resolve(cwd, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("resolve working directory %s in the container's root: %w", cwd, explainResolve(err))
	}
	mkdirs := func() error {
		fd, err := r.mkdirs(cwd)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	err = asFsUser(u, mkdirs)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		err = mkdirs()
	}
	if err != nil {
		return fmt.Errorf("create working directory %s: %w", cwd, explainResolve(err))
	}
	return nil
}

// mkdirs returns an O_PATH fd of directory p, creating the missing
// directories (0755) one mkdirat at a time in a parent resolved in the
// root, p as written (see resolve). A component that exists but does not
// resolve (a dangling symlink) is not followed: ENOENT.
func (r *root) mkdirs(p string) (int, error) {
	fd, err := r.resolve(p, unix.O_PATH|unix.O_DIRECTORY)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	parent, base := path.Split(strings.TrimRight(p, "/"))
	if base == "" || parent == "" {
		return -1, err
	}
	pfd, err := r.mkdirs(parent)
	if err != nil {
		return -1, err
	}
	err = unix.Mkdirat(pfd, base, 0o755)
	unix.Close(pfd)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("mkdir %s: %w", path.Join(parent, base), err)
	}
	return r.resolve(p, unix.O_PATH|unix.O_DIRECTORY)
}

// asFsUser runs fn with the filesystem credentials of u on this thread.
func asFsUser(u specs.User, fn func() error) error {
	// setUser sets the same list again later.
	if err := setThreadGroups(u.AdditionalGids); err != nil {
		return err
	}
	unix.Setfsgid(int(u.GID))
	unix.Setfsuid(int(u.UID))
	defer func() {
		unix.Setfsuid(0)
		unix.Setfsgid(0)
	}()
	// setfsuid(2) reports no error: read the value back.
	if got, _ := unix.SetfsuidRetUid(-1); got != int(u.UID) {
		return fmt.Errorf("setfsuid %d: still %d", u.UID, got)
	}
	if got, _ := unix.SetfsgidRetGid(-1); got != int(u.GID) {
		return fmt.Errorf("setfsgid %d: still %d", u.GID, got)
	}
	return fn()
}

// enterCwd makes cwd the working directory: resolved in the process's root
// (after pivot_root or setns into the container's mount namespace, the
// container's "/"), entered with fchdir, and checked with getcwd.
func enterCwd(r *root, cwd string) error {
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return fmt.Errorf("working directory %q is not absolute", cwd)
	}
	fd, err := r.resolve(cwd, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("resolve working directory %s in the container's root: %w", cwd, explainResolve(err))
	}
	err = unix.Fchdir(fd)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("enter working directory %s: %w", cwd, err)
	}
	wd, err := getcwd()
	if err != nil {
		return fmt.Errorf("working directory %s: %w", cwd, err)
	}
	if !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("working directory %s is outside the container's root (getcwd: %q)", cwd, wd)
	}
	return nil
}

// getcwd is getcwd(2) as the kernel answers it. syscall.Getwd turns a
// "(unreachable)/…" answer into ENOENT; here it is kept for the message.
func getcwd() (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Getcwd(buf)
	if err != nil {
		return "", fmt.Errorf("getcwd: %w", err)
	}
	return strings.TrimRight(string(buf[:n]), "\x00"), nil
}
