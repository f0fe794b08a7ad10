/* The pause role: pid 1 of a pod that shares one pid namespace. It runs in the
 * constructor, so the Go runtime never starts and the process stays small.
 *
 * Every container of such a pod sees the pause process as its pid 1, so
 * whatever the pause can reach, a container that may inspect pid 1 (through
 * /proc/1/root, /proc/1/cwd, /proc/1/fd) reaches too: an init resolving a
 * WORKDIR such as /proc/1/root/tmp, or a debug sidecar with CAP_SYS_PTRACE.
 * So the pause keeps nothing: no view of the host's files, no capability, no
 * fd, and it cannot be inspected by anyone without CAP_SYS_PTRACE. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsexec.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* The host directory the empty root is first mounted on. Any directory would
 * do, since the mount is made in the pause's own namespace and never seen by
 * the host; /proc exists wherever crib runs. */
#define PAUSE_MOUNTPOINT "/proc"

/* pause_own_mount_ns gives the pause a private copy of its mount namespace,
 * whatever the launcher asked for, so the pivot_root below can never move the
 * root of a namespace another process lives in, and no mount or unmount of
 * ours propagates to the host. */
static void pause_own_mount_ns(void)
{
	if (unshare(CLONE_NEWNS) < 0)
		crib_bail("nsexec: pause: create mount namespace: %m");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		crib_bail("nsexec: pause: make / rprivate: %m");
}

/* on_initramfs reports whether / is the initial ramfs, which pivot_root(2)
 * refuses with EINVAL (a host booted without switch_root, as the cgroup v2
 * test VM is). */
static int on_initramfs(void)
{
	struct statfs st;
	return statfs("/", &st) == 0 && (st.f_type == RAMFS_MAGIC || st.f_type == TMPFS_MAGIC);
}

/* move_root is the fallback where pivot_root cannot be used (runtime/initproc
 * does the same for containers): move the empty root, the current directory,
 * over / and chroot into it. The host's mounts stay in the namespace beneath
 * it, out of reach of a process with no capability (CAP_SYS_CHROOT included). */
static void move_root(void)
{
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		crib_bail("nsexec: pause: move the empty root to /: %m");
	if (chroot(".") < 0)
		crib_bail("nsexec: pause: chroot into the empty root: %m");
	if (chdir("/") < 0)
		crib_bail("nsexec: pause: enter /: %m");
}

/* pause_empty_root makes an empty read-only tmpfs the pause's root and
 * current directory, and detaches the host's tree from its namespace. The
 * tmpfs is read-only from the start, so nothing can ever be created in it. */
static void pause_empty_root(void)
{
	unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
	if (mount("tmpfs", PAUSE_MOUNTPOINT, "tmpfs", flags, "mode=0555,size=4k") < 0)
		crib_bail("nsexec: pause: mount an empty tmpfs on %s: %m", PAUSE_MOUNTPOINT);
	if (chdir(PAUSE_MOUNTPOINT) < 0)
		crib_bail("nsexec: pause: enter the empty root: %m");
	/* pivot_root(".", "."): the old root ends up stacked on the new one, so no
	 * directory is needed to put it in; unmounting "." then removes it. */
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		if (errno == EINVAL && on_initramfs()) {
			move_root();
			return;
		}
		crib_bail("nsexec: pause: pivot_root into the empty root: %m");
	}
	if (umount2(".", MNT_DETACH) < 0)
		crib_bail("nsexec: pause: detach the old root: %m");
	if (chdir("/") < 0)
		crib_bail("nsexec: pause: enter /: %m");
}

/* pause_drop_privileges empties every capability set, bounding and ambient
 * included, so a pause is worth nothing to whoever takes it over, then sets
 * no_new_privs and makes it non-dumpable: a container process running as root
 * now holds a superset of the pause's capabilities, and only dumpability keeps
 * it from opening /proc/1/mem or /proc/1/fd without CAP_SYS_PTRACE. */
static void pause_drop_privileges(void)
{
	/* The bounding set first: dropping from it needs CAP_SETPCAP. The kernel
	 * refuses capabilities above its last with EINVAL. */
	for (int cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break;
		crib_bail("nsexec: pause: drop capability %d from the bounding set: %m", cap);
	}
	/* Kernels before 4.3 have no ambient set (EINVAL): nothing to clear. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		crib_bail("nsexec: pause: clear the ambient capabilities: %m");
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {{0}};
	if (syscall(SYS_capset, &hdr, data) < 0)
		crib_bail("nsexec: pause: clear the effective, permitted and inheritable capabilities: %m");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		crib_bail("nsexec: pause: set no_new_privs: %m");
	/* Stage 0 made the process non-dumpable, but credential changes can reset
	 * it: set it again after the last one. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		crib_bail("nsexec: pause: make the process non-dumpable: %m");
}

void crib_pause_confine(void)
{
	pause_own_mount_ns();
	pause_empty_root();
	pause_drop_privileges();
}

/* pause_close_fds closes every inherited fd: the cgroup directory it was
 * cloned into, stdio opened on the host, the log pipe, and last the init
 * socket, whose EOF tells the launcher that all are gone. Through /proc/1/fd
 * any of them would lead a container back to the host. */
static void pause_close_fds(int last)
{
	if (syscall(SYS_close_range, 0U, (unsigned)last - 1, 0U) < 0 ||
	    syscall(SYS_close_range, (unsigned)last + 1, ~0U, 0U) < 0) {
		/* Kernels before 5.9: close one by one, up to the fd limit. */
		struct rlimit rl;
		int max = 1024;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (1 << 20))
			max = (int)rl.rlim_cur;
		for (int fd = 0; fd < max; fd++)
			if (fd != last)
				close(fd);
	}
	close(last);
}

void crib_pause(int initpipe)
{
	sigset_t all, wanted;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGCHLD);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGINT);
	pause_close_fds(initpipe);
	for (;;) {
		int sig = sigwaitinfo(&wanted, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
		/* SIGCHLD, or EINTR: reap every orphan that ended. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
