package spec

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// syscallGroup is a set of system calls the RuntimeDefault profile allows
// (or, with errno set, fails with that errno), possibly only when the
// container holds a capability (ifCap) or only when it does not (unlessCap).
type syscallGroup struct {
	names     []string
	ifCap     string
	unlessCap string
	args      []specs.LinuxSeccompArg
	errno     uint // 0: allow
}

// newNamespaceFlags are the clone(2) flags that make namespaces; only a
// container with CAP_SYS_ADMIN may use them.
const newNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// defaultSyscalls is crib's RuntimeDefault profile: what Docker's and
// containerd's default profile allows, for x86_64. Everything else fails
// with EPERM: among others the keyring (add_key, keyctl, request_key),
// io_uring, userfaultfd, kexec, swapon, and what needs a capability the
// container does not hold. The names a kernel does not know are skipped
// by the init with a warning, so the list may name newer calls.
var defaultSyscalls = []syscallGroup{
	{names: []string{
		"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
		"capget", "capset", "chdir", "chmod", "chown", "clock_adjtime", "clock_getres",
		"clock_gettime", "clock_nanosleep", "close", "close_range", "connect",
		"copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1",
		"epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
		"epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group",
		"faccessat", "faccessat2", "fadvise64", "fallocate", "fanotify_mark", "fchdir",
		"fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl", "fdatasync",
		"fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
		"fstatfs", "fsync", "ftruncate", "futex", "futex_requeue", "futex_wait",
		"futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
		"getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer",
		"getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
		"getrandom", "getresgid", "getresuid", "getrlimit", "get_robust_list", "getrusage",
		"getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
		"getuid", "getxattr", "getxattrat", "inotify_add_watch", "inotify_init",
		"inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
		"io_getevents", "io_pgetevents", "ioprio_get", "ioprio_set", "io_setup",
		"io_submit", "kill", "landlock_add_rule", "landlock_create_ruleset",
		"landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen",
		"listmount", "listxattr", "listxattrat", "llistxattr", "lremovexattr", "lseek",
		"lsetxattr", "lstat", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
		"memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
		"mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
		"mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "mseal", "msgctl",
		"msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
		"nanosleep", "newfstatat", "open", "openat", "openat2",
		"pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
		"pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv",
		"preadv2", "prlimit64", "process_mrelease", "pselect6", "pwrite64", "pwritev",
		"pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom",
		"recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename",
		"renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
		"rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
		"rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity",
		"sched_getattr", "sched_getparam", "sched_get_priority_max",
		"sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
		"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
		"sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
		"sendfile", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsuid", "setgid",
		"setgroups", "setitimer", "setpgid", "setpriority", "setregid", "setresgid",
		"setresuid", "setreuid", "setrlimit", "set_robust_list", "setsid", "setsockopt",
		"set_thread_area", "set_tid_address", "setuid", "setxattr", "setxattrat", "shmat",
		"shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
		"socketpair", "splice", "stat", "statfs", "statx", "symlink", "symlinkat", "sync",
		"sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
		"timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime",
		"timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill",
		"truncate", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime",
		"utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid", "write", "writev",
		// x86_64 only.
		"arch_prctl", "modify_ldt",
		// Allowed to all since Linux 4.8, whose ptrace no longer lets a
		// tracer bypass the filter of its tracee.
		"ptrace", "process_vm_readv", "process_vm_writev",
	}},
	// Every socket family but AF_VSOCK, which reaches the host's
	// hypervisor side. The family is an int: the kernel reads the low 32
	// bits, so the refusal masks them (a "!= AF_VSOCK" on all 64 bits let
	// 1<<32|AF_VSOCK through); the rule before the allow wins.
	{names: []string{"socket"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, ValueTwo: unix.AF_VSOCK, Op: specs.OpMaskedEqual}}, errno: uint(unix.EPERM)},
	{names: []string{"socket"}},
	// The execution domains programs ask for (PER_LINUX, PER_LINUX32,
	// UNAME26 and their combination) and the query 0xffffffff.
	{names: []string{"personality"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
	{names: []string{"personality"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x0008, Op: specs.OpEqualTo}}},
	{names: []string{"personality"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x20000, Op: specs.OpEqualTo}}},
	{names: []string{"personality"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x20008, Op: specs.OpEqualTo}}},
	{names: []string{"personality"}, args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo}}},

	// Namespaces, mounts and the rest of what CAP_SYS_ADMIN allows.
	{ifCap: "CAP_SYS_ADMIN", names: []string{
		"name_to_handle_at", // file handles and mount ids, as containerd gates it
		"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
		"lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
		"perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname",
		"setns", "syslog", "umount2", "unshare",
	}},
	// Without it: clone for threads and processes, never new namespaces;
	// clone3 (whose flags are in memory, out of the filter's reach) fails
	// with ENOSYS so that the C library falls back to clone.
	{unlessCap: "CAP_SYS_ADMIN", names: []string{"clone"},
		args: []specs.LinuxSeccompArg{{Index: 0, Value: newNamespaceFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
	{unlessCap: "CAP_SYS_ADMIN", names: []string{"clone3"}, errno: uint(unix.ENOSYS)},

	{ifCap: "CAP_DAC_READ_SEARCH", names: []string{"open_by_handle_at"}},
	{ifCap: "CAP_SYS_BOOT", names: []string{"reboot"}},
	{ifCap: "CAP_SYS_CHROOT", names: []string{"chroot"}},
	{ifCap: "CAP_SYS_MODULE", names: []string{"delete_module", "init_module", "finit_module"}},
	{ifCap: "CAP_SYS_PACCT", names: []string{"acct"}},
	{ifCap: "CAP_SYS_PTRACE", names: []string{"kcmp", "pidfd_getfd", "process_madvise"}},
	{ifCap: "CAP_SYS_RAWIO", names: []string{"iopl", "ioperm"}},
	{ifCap: "CAP_SYS_TIME", names: []string{"settimeofday", "clock_settime"}},
	{ifCap: "CAP_SYS_TTY_CONFIG", names: []string{"vhangup"}},
	{ifCap: "CAP_SYS_NICE", names: []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
	{ifCap: "CAP_SYSLOG", names: []string{"syslog"}},
	{ifCap: "CAP_BPF", names: []string{"bpf"}},
	{ifCap: "CAP_PERFMON", names: []string{"perf_event_open"}},
}

// defaultProfile is the RuntimeDefault profile for a container holding
// caps (its bounding set).
func defaultProfile(caps []string) *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	}
	for _, g := range defaultSyscalls {
		if g.ifCap != "" && !slices.Contains(caps, g.ifCap) || g.unlessCap != "" && slices.Contains(caps, g.unlessCap) {
			continue
		}
		sc := specs.LinuxSyscall{Names: slices.Clone(g.names), Action: specs.ActAllow, Args: slices.Clone(g.args)}
		if g.errno != 0 {
			errno := g.errno
			sc.Action, sc.ErrnoRet = specs.ActErrno, &errno
		}
		p.Syscalls = append(p.Syscalls, sc)
	}
	return p
}
