package initproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crib-runtime/crib/internal/seccomp"
)

// process is what init execs once the launcher says Start.
type process struct {
	path  string // resolved executable
	args  []string
	env   []string
	umask int
	// seccomp, when set, is loaded last before execve.
	seccomp *seccompPlan
}

// defaultUmask is runc's, for a spec that sets none.
const defaultUmask = 0o022

// rlimitNames maps the spec's RLIMIT_* names to resources.
var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE,
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setupProcess applies the process settings, in runc's order: rlimits,
// no_new_privs, the bounding set (needs CAP_SETPCAP, so before the uid
// changes), the user and groups with PR_SET_KEEPCAPS so capabilities
// survive (for a spec without capabilities too, whose sets are then
// dropped as the uid change would have), the other capability sets, the
// working directory (as the user, since it must be reachable by the user),
// then resolves the executable.
// The seccomp filter (nil: none) was compiled first, so that a bad profile
// failed before anything changed; exec loads it.
func setupProcess(spec *specs.Spec, isInit bool, lastCap int, filter *seccomp.Filter) (*process, error) {
	p := spec.Process
	plan := &seccompPlan{filter: filter}
	for _, rl := range p.Rlimits {
		if err := setRlimit(rl); err != nil {
			return nil, fail(stepRlimit, "", fmt.Errorf("set rlimit %s: %w", rl.Type, err))
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return nil, fail(stepNoNewPrivs, "", fmt.Errorf("set no_new_privs: %w", err))
		}
	}
	var caps capSets
	if p.Capabilities != nil {
		var err error
		if caps, err = parseCaps(p.Capabilities, lastCap); err != nil {
			return nil, fail(stepCaps, "", err)
		}
		if err := dropBounding(caps.bounding, lastCap); err != nil {
			return nil, fail(stepCaps, "", err)
		}
	}
	// Capabilities are kept across the uid change also when the spec sets
	// none: the thread then holds root's permitted set in the instant
	// before setUser makes the process non-dumpable again, so no process of
	// the user can ptrace it, whatever fs.suid_dumpable says. They are
	// dropped right after, as the change would have dropped them.
	dropAfter := p.Capabilities == nil && p.User.UID != 0
	keepCaps := p.Capabilities != nil || dropAfter
	if keepCaps {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return nil, fail(stepCaps, "", fmt.Errorf("set keepcaps: %w", err))
		}
	}
	// The container's "/" (after pivot_root, or setns into its mount
	// namespace for role exec): the root every path of the spec is
	// resolved in.
	r, err := openRoot("/")
	if err != nil {
		return nil, fail(stepCwd, "/", err)
	}
	defer r.close()
	// As root first: a cwd on a root-squashed NFS volume is reachable only
	// as the user, one under a 0700 root-owned dir only as root; runc tries
	// both, and so do we.
	cwdErr := enterCwd(r, p.Cwd)
	if err := setUser(p.User); err != nil {
		return nil, fail(stepUser, "", err)
	}
	if keepCaps {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
			return nil, fail(stepCaps, "", fmt.Errorf("clear keepcaps: %w", err))
		}
	}
	if dropAfter {
		if err := dropAsSetuid(); err != nil {
			return nil, fail(stepCaps, "", err)
		}
	}
	if p.Capabilities != nil {
		apply := caps
		if filter != nil && !p.NoNewPrivileges {
			if raised, ok := withSysAdmin(caps); ok {
				apply, plan.final = raised, &caps
			}
		}
		if err := applyCaps(apply); err != nil {
			return nil, fail(stepCaps, "", err)
		}
	}
	if cwdErr != nil {
		if err := enterCwd(r, p.Cwd); err != nil {
			return nil, fail(stepCwd, p.Cwd, err)
		}
	}
	env := withHome(r, p.Env, p.User.UID)
	exe, err := lookPath(r, p.Args[0], env)
	if err != nil {
		return nil, fail(stepExec, p.Args[0], err)
	}
	proc := &process{path: exe, args: p.Args, env: env, umask: defaultUmask, seccomp: plan}
	if p.User.Umask != nil {
		proc.umask = int(*p.User.Umask)
	}
	return proc, nil
}

// setRlimit sets one limit. It goes through package syscall's prlimit on
// purpose: that tells the Go runtime not to put back, at execve, the
// RLIMIT_NOFILE it raised for itself at start-up.
func setRlimit(rl specs.POSIXRlimit) error {
	res, ok := rlimitNames[rl.Type]
	if !ok {
		return errors.New("unknown rlimit")
	}
	lim := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
	return unix.Prlimit(0, res, &lim, nil)
}

// setUser switches the calling thread, the one that will execve, to the
// spec's uid, gid and supplementary groups: the groups first (setgroups
// needs CAP_SETGID), then gid, then uid. Like the capabilities, keepcaps,
// the bounding set and no_new_privs, credentials are set on this thread
// only (as runc did until Go made package syscall's calls reach every
// thread): execve keeps the calling thread's credentials and ends the
// others, which run nothing but the Go runtime and keep root until then.
// Package syscall's calls stop every thread of the process three times
// over, ~0.3 ms of each container start and exec here (docs/benchmarks.md).
//
// The kernel makes the process dumpable again (fs.suid_dumpable) when the
// effective uid changes; it is made non-dumpable again at once, or a
// process of the user in the container's pid namespace could ptrace this
// thread and reach the root ones through the memory they share. In the
// instant between, the caller's keepcaps leaves the thread a permitted set
// the user's processes lack, which ptrace also requires.
func setUser(u specs.User) error {
	// An empty list also drops the launcher's (root's) groups.
	if err := setThreadGroups(u.AdditionalGids); err != nil {
		return err
	}
	if err := setThreadIDs(unix.SYS_SETRESGID, u.GID); err != nil {
		return fmt.Errorf("setresgid %d: %w", u.GID, err)
	}
	if err := setThreadIDs(unix.SYS_SETRESUID, u.UID); err != nil {
		return fmt.Errorf("setresuid %d: %w", u.UID, err)
	}
	if uidChanged != nil {
		uidChanged()
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear dumpable: %w", err)
	}
	return nil
}

// uidChanged, set by tests only, runs on the thread between its uid change
// and PR_SET_DUMPABLE: the instant setupProcess's keepcaps guards.
var uidChanged func()

// setThreadGroups sets this thread's supplementary groups (x/sys's
// setgroups is the thread's, unlike package syscall's).
func setThreadGroups(gids []uint32) error {
	groups := make([]int, len(gids))
	for i, g := range gids {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups %v: %w", gids, err)
	}
	return nil
}

// setThreadIDs sets this thread's real, effective and saved ids with
// setresuid(2) or setresgid(2): on the 64-bit targets initproc builds for,
// the calls that take 32-bit ids (386 and arm name those *32).
func setThreadIDs(trap uintptr, id uint32) error {
	if _, _, e := unix.RawSyscall(trap, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
		return e
	}
	return nil
}

// On a 32-bit target SYS_SETRESUID would be the 16-bit call, which takes
// uid 65536 for 0: such a build fails to compile here (the length
// overflows) rather than run it.
var _ [unsafe.Sizeof(uintptr(0)) - 8]byte

// withHome adds HOME, as runc does, when the spec's environment has none:
// the user's home from the container's /etc/passwd (resolved in r), or "/".
func withHome(r *root, env []string, uid uint32) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			return env
		}
	}
	home := "/"
	// O_NONBLOCK and the type check: a FIFO there must not hang init.
	if fd, err := r.resolve("/etc/passwd", unix.O_RDONLY|unix.O_NONBLOCK); err == nil {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			return append(env[:len(env):len(env)], "HOME="+home)
		}
		f := os.NewFile(uintptr(fd), "/etc/passwd")
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// name:password:uid:gid:gecos:home:shell
			fields := strings.Split(sc.Text(), ":")
			if len(fields) >= 6 && fields[2] == strconv.FormatUint(uint64(uid), 10) && fields[5] != "" {
				home = fields[5]
				break
			}
		}
		f.Close()
	}
	return append(env[:len(env):len(env)], "HOME="+home)
}

// getenv returns the last value of key in env, as the process's own
// environment lookup (runc sets them in order, the last one wins).
func getenv(env []string, key string) (string, bool) {
	val, found := "", false
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			val, found = v, true
		}
	}
	return val, found
}

// lookPath finds name in the PATH of the container's environment (not
// init's), inside the container's root and as the user, so the launcher
// learns of a missing or non-executable command before the container is
// reported started. Every candidate is resolved in r with
// RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: a command such as
// /proc/self/fd/N/../bin/sh or a symlink through /proc/1/root is refused.
// Relative names are taken from the working directory, which enterCwd
// checked is inside the root. The messages are os/exec's.
func lookPath(r *root, name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(r, name); err != nil {
			return "", fmt.Errorf("exec: %q: %w", name, err)
		}
		return name, nil
	}
	pathEnv, _ := getenv(env, "PATH")
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "." // POSIX: an empty PATH element is the working directory
		}
		p := filepath.Join(dir, name)
		if executable(r, p) == nil {
			if !filepath.IsAbs(p) && !strings.HasPrefix(p, ".") {
				p = "./" + p
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

// executable checks that p, resolved in r, is a regular file the user may
// execute. execve(2) later resolves the same string again: by then init
// holds no fd that leads out of the root (closeInheritedFds) and its root
// and working directory are the container's, so the two resolutions agree
// except for what the container itself changes in between.
func executable(r *root, p string) error {
	abs := p
	if !path.IsAbs(p) {
		wd, err := getcwd()
		if err != nil {
			return err
		}
		// Not path.Join: "link/../x" is the kernel's to resolve, as
		// execve will. wd itself has no symlinks or "..".
		abs = strings.TrimSuffix(wd, "/") + "/" + p
	}
	fd, err := r.resolve(abs, unix.O_PATH)
	if err != nil {
		return &os.PathError{Op: "stat", Path: p, Err: explainResolve(err)}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return &os.PathError{Op: "exec", Path: p, Err: unix.EISDIR}
	}
	// faccessat2(2) with AT_EMPTY_PATH checks the fd itself (Linux 5.8);
	// before it, the path, which execve resolves the same way anyway.
	err = unix.Faccessat2(fd, "", unix.X_OK, unix.AT_EACCESS|unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		err = unix.Faccessat(unix.AT_FDCWD, abs, unix.X_OK, unix.AT_EACCESS)
	}
	if err != nil {
		return &os.PathError{Op: "exec", Path: p, Err: err}
	}
	return nil
}

// exec replaces init with the user's process. Every fd but stdio becomes
// close-on-exec first (the init socket among them: its EOF tells the
// launcher that execve succeeded); on failure it returns the error.
func (p *process) exec() error {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		if err := cloexecFromProc(); err != nil {
			return fmt.Errorf("set close-on-exec: %w", err)
		}
	}
	unix.Umask(p.umask)
	if err := p.seccomp.load(); err != nil {
		return err
	}
	if err := syscall.Exec(p.path, p.args, p.env); err != nil {
		return fmt.Errorf("exec %s: %w", p.path, err)
	}
	return nil
}

// cloexecFromProc is the fallback for kernels before close_range(2)'s
// CLOSE_RANGE_CLOEXEC (5.11).
func cloexecFromProc() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
