/*
 * The constructor of "crib init": it runs before the Go runtime starts, so
 * before any thread exists, and does what a multi-threaded Go process cannot:
 * setns(2) into existing namespaces and unshare(2)/clone(2) into new ones.
 *
 * Stage 0 (the re-executed binary): read and check the bootstrap message, open
 * and check every namespace file, join them (user first, mnt last), create a
 * new user namespace and let the launcher map it, unshare the other new
 * namespaces, clone(CLONE_PARENT) the final process, report its pid, exit.
 * Stage 1 (the final process, the launcher's child): wait until the launcher
 * has placed it in its cgroup and RDT class, unshare the cgroup namespace
 * (so its root is the container's cgroup), report RUNNING, and, confined
 * first (pause.c), become the pod's pause process, or close every fd but
 * stdio and the two pipes and return to Go (roles init and exec).
 *
 * A new pid namespace takes effect only in children, which is why the clone
 * is always done. Every failure ends in crib_bail(): one JSON log line on the
 * log fd, the same text as a SYNC_ERROR for the launcher to report verbatim, and
 * _exit(1).
 */
#ifdef CRIB_NOLIBC
#include "nolibc.h"
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/prctl.h>
#else
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#endif

#include "decode.h"
#include "nsexec.h"

#ifdef CRIB_NOLIBC
/* No writable data in the blob: on the state page (nolibc.h). */
#define initpipe (NX->initpipe)
#define logpipe (NX->logpipe)
#else
static int initpipe = -1;
static int logpipe = -1;
#endif

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (fd >= 0 && len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* read_full returns how many bytes it read: fewer than len only at EOF or on error. */
static size_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void log_json(const char *level, const char *msg)
{
	char line[2048];
	size_t off = (size_t)snprintf(line, sizeof(line), "{\"level\":\"%s\",\"msg\":\"", level);
	for (const char *c = msg; *c && off < sizeof(line) - 8; c++) {
		unsigned char u = (unsigned char)*c;
		if (u == '"' || u == '\\')
			off += (size_t)snprintf(line + off, sizeof(line) - off, "\\%c", u);
		else if (u < 0x20)
			off += (size_t)snprintf(line + off, sizeof(line) - off, "\\u%04x", u);
		else
			line[off++] = (char)u;
	}
	off += (size_t)snprintf(line + off, sizeof(line) - off, "\"}\n");
	write_all(logpipe >= 0 ? logpipe : STDERR_FILENO, line, off);
}

static void send_sync(uint32_t type, const void *payload, uint32_t len)
{
	uint8_t hdr[8];
	for (int i = 0; i < 4; i++) {
		hdr[i] = (uint8_t)(type >> (8 * i));
		hdr[4 + i] = (uint8_t)(len >> (8 * i));
	}
	write_all(initpipe, hdr, sizeof(hdr));
	write_all(initpipe, payload, len);
}

void crib_bail(const char *fmt, ...)
{
	char msg[CRIB_SYNC_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_json("error", msg);
	send_sync(CRIB_SYNC_ERROR, msg, (uint32_t)strlen(msg));
	_exit(1);
}

__attribute__((format(printf, 1, 2))) static void warn(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_json("warning", msg);
}

/* wait_sync reads one sync message and fails unless it has the wanted type. */
static void wait_sync(uint32_t want)
{
	uint8_t hdr[8];
	if (read_full(initpipe, hdr, sizeof(hdr)) != sizeof(hdr))
		crib_bail("nsexec: init pipe closed while waiting for sync message %u", want);
	uint32_t type = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	uint32_t len = hdr[4] | hdr[5] << 8 | hdr[6] << 16 | (uint32_t)hdr[7] << 24;
	if (type != want || len != 0)
		crib_bail("nsexec: got sync message %u (%u bytes), want %u", type, len, want);
}

static int env_fd(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return -1;
	char *end;
	long fd = strtol(v, &end, 10);
	if (*end || fd < 3 || fd > 1 << 20)
		crib_bail("nsexec: %s=%s is not an fd number", name, v);
	return (int)fd;
}

static void read_bootstrap(struct crib_bootstrap *b)
{
	char err[512];
	uint8_t hdr[CRIB_HEADER_SIZE];
	size_t got = read_full(initpipe, hdr, sizeof(hdr));
	/* Read once per process, so no allocator is needed: the build without
	 * libc has none, nor any writable data but its state pages. */
#ifdef CRIB_NOLIBC
	uint8_t *buf = NX->bootstrap;
#else
	static uint8_t buf[CRIB_BOOTSTRAP_MAX];
#endif
	long len = crib_decode_header(hdr, got, err, sizeof(err));
	if (len < 0)
		crib_bail("nsexec: %s", err);
	got = read_full(initpipe, buf, (size_t)len);
	if (got != (size_t)len)
		crib_bail("nsexec: bootstrap: short read (%zu of %ld bytes)", got, len);
	if (crib_decode_attrs(buf, (size_t)len, b, err, sizeof(err)) < 0)
		crib_bail("nsexec: %s", err);
}

/* open_namespaces opens every path and checks that each fd is an nsfs file
 * of the declared type, before any setns(2) changes what paths mean. */
static void open_namespaces(struct crib_bootstrap *b)
{
	for (size_t i = 0; i < b->nns; i++) {
		struct crib_ns *ns = &b->ns[i];
		const char *what = ns->path[0] ? ns->path : "fd";
		if (ns->fd < 0) {
			ns->fd = open(ns->path, O_RDONLY | O_CLOEXEC);
			if (ns->fd < 0)
				crib_bail("nsexec: open %s namespace %s: %m", crib_ns_name(ns->type), ns->path);
		}
		struct statfs st;
		if (fstatfs(ns->fd, &st) < 0)
			crib_bail("nsexec: statfs %s namespace %s (fd %d): %m", crib_ns_name(ns->type), what, ns->fd);
		if (st.f_type != NSFS_MAGIC)
			crib_bail("nsexec: %s namespace %s (fd %d) is not a namespace file", crib_ns_name(ns->type), what,
			     ns->fd);
		int type = ioctl(ns->fd, NS_GET_NSTYPE);
		if (type < 0)
			crib_bail("nsexec: type of %s namespace %s: %m", crib_ns_name(ns->type), what);
		if ((uint32_t)type != ns->type)
			crib_bail("nsexec: %s is a %s namespace, not a %s namespace", what,
			     crib_ns_name((uint32_t)type) ? crib_ns_name((uint32_t)type) : "unknown",
			     crib_ns_name(ns->type));
	}
}

/* become_root makes the process uid and gid 0 of the user namespace it is
 * in: until then its ids (the host's root) are unmapped there, and files it
 * created would fail with EOVERFLOW. */
static void become_root(void)
{
	if (setresgid(0, 0, 0) < 0)
		crib_bail("nsexec: become gid 0 in the user namespace (is 0 mapped?): %m");
	if (setresuid(0, 0, 0) < 0)
		crib_bail("nsexec: become uid 0 in the user namespace (is 0 mapped?): %m");
}

/* join_namespaces joins the user namespace first, so the others are entered
 * with its capabilities (a pod's are owned by it), and the mount namespace
 * last, since joining it changes the root and working directory. It
 * returns whether it joined a user namespace. */
static int join_namespaces(struct crib_bootstrap *b)
{
	int joined_user = 0;
	static const uint32_t order[] = {CLONE_NEWUSER, CLONE_NEWIPC,    CLONE_NEWUTS,  CLONE_NEWNET,
					 CLONE_NEWPID,  CLONE_NEWCGROUP, CLONE_NEWTIME, CLONE_NEWNS};
	for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
		for (size_t i = 0; i < b->nns; i++) {
			struct crib_ns *ns = &b->ns[i];
			if (ns->type != order[o])
				continue;
			if (setns(ns->fd, (int)ns->type) < 0)
				crib_bail("nsexec: join %s namespace %s: %m", crib_ns_name(ns->type),
				     ns->path[0] ? ns->path : "fd");
			close(ns->fd);
			if (ns->type == CLONE_NEWUSER) {
				joined_user = 1;
				become_root();
			}
		}
	}
	return joined_user;
}

static void set_oom_score_adj(int32_t adj)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	char v[16];
	int n = snprintf(v, sizeof(v), "%d", adj);
	if (fd < 0 || write(fd, v, (size_t)n) != n)
		warn("nsexec: set oom_score_adj %d (best effort, lowering needs CAP_SYS_RESOURCE): %m", adj);
	if (fd >= 0)
		close(fd);
}

/* new_userns creates the user namespace and waits while the launcher writes
 * uid_map, gid_map and setgroups from the host side. */
static void new_userns(void)
{
	if (unshare(CLONE_NEWUSER) < 0)
		crib_bail("nsexec: create user namespace: %m");
	int32_t pid = (int32_t)getpid();
	send_sync(CRIB_SYNC_USERMAP_REQ, &pid, sizeof(pid));
	wait_sync(CRIB_SYNC_USERMAP_ACK);
	become_root();
}

/* bail_fd fails with errno, naming the file behind fd. */
__attribute__((noreturn)) static void bail_fd(const char *what, int fd)
{
	int saved = errno;
	char link[64], target[CRIB_PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	errno = saved;
	crib_bail("%s %s (fd %d): %m", what, n > 0 ? target : "?", fd);
}

/* join_cgroups_v1 moves stage 0 into the container's cgroup in every v1
 * hierarchy by writing "0" to each tasks file: a single thread moving itself
 * skips the kernel's global threadgroup lock, whose first taking after a
 * quiet spell waits out an RCU grace period (~15 ms) — the cost of every
 * other way in. The final process inherits the cgroups at clone. */
static void join_cgroups_v1(struct crib_bootstrap *b)
{
	for (size_t i = 0; i < b->ntasks; i++) {
		if (write(b->tasks_fd[i], "0", 1) != 1)
			bail_fd("nsexec: join cgroup", b->tasks_fd[i]);
		close(b->tasks_fd[i]);
	}
}

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* The kernel's struct clone_args up to its cgroup field (CLONE_ARGS_SIZE_VER2). */
struct crib_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
		cgroup;
};

/* clone_final makes the final process the launcher's child (CLONE_PARENT),
 * born in the cgroup v2 directory when one is given. Kernels without clone3
 * or CLONE_INTO_CGROUP (< 5.7) refuse it before doing anything: they get a
 * plain clone and the launcher places the process; *in_cgroup2 says which
 * happened. Any other refusal is final: a failed first clone leaves a new
 * pid namespace without its init, where no clone can succeed.
 * In a user namespace it joined, stage 0 is the namespace's root, whom the
 * host's cgroup files do not let in (EACCES): it clones plainly and the
 * launcher places the process from outside. */
static long clone_final(const struct crib_bootstrap *b, int in_joined_userns, uint32_t *in_cgroup2)
{
	*in_cgroup2 = 0;
	if (b->cgroup2_fd > 0 && !in_joined_userns) {
		/* exit_signal must be 0 with CLONE_PARENT: the child gets ours. */
		struct crib_clone_args a = {.flags = CLONE_PARENT | CLONE_INTO_CGROUP, .cgroup = (uint64_t)b->cgroup2_fd};
		long pid = syscall(SYS_clone3, &a, sizeof(a));
		if (pid >= 0) {
			*in_cgroup2 = CRIB_PID_IN_CGROUP2;
			return pid;
		}
		if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
			bail_fd("nsexec: clone into cgroup", b->cgroup2_fd);
	}
	return syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
}

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* close_fds_from closes fds first..last; close_range(2) or, before Linux 5.9,
 * one by one up to the fd limit (nothing but this thread exists yet). */
static void close_fds_from(unsigned first, unsigned last)
{
	if (first > last)
		return;
	if (syscall(SYS_close_range, first, last, 0) == 0)
		return;
	struct rlimit rl;
	unsigned max = 1u << 20;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max)
		max = (unsigned)rl.rlim_cur;
	for (unsigned fd = first; fd <= last && fd < max; fd++)
		close((int)fd);
}

/* close_inherited_fds keeps stdio, the init pipe and the log pipe (now
 * close-on-exec) and closes every other fd before the Go init starts: the
 * cgroup v2 directory clone3 needed, or anything the launcher leaked, would
 * otherwise be a way out of the container's root through /proc/self/fd/N/..
 * (runc's CVE-2024-21626). The Go init checks the same again. */
static void close_inherited_fds(void)
{
	int keep[2] = {initpipe, logpipe};
	if (keep[0] > keep[1]) {
		int t = keep[0];
		keep[0] = keep[1];
		keep[1] = t;
	}
	unsigned next = 3;
	for (int i = 0; i < 2; i++) {
		if (keep[i] < (int)next)
			continue;
		close_fds_from(next, (unsigned)keep[i] - 1);
		if (fcntl(keep[i], F_SETFD, FD_CLOEXEC) < 0)
			crib_bail("nsexec: make fd %d close-on-exec: %m", keep[i]);
		next = (unsigned)keep[i] + 1;
	}
	close_fds_from(next, ~0u);
}

static void stage1(const struct crib_bootstrap *b)
{
	wait_sync(CRIB_SYNC_CONTINUE);
	/* Now inside its cgroup: a new cgroup namespace gets it as its root. */
	if ((b->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		crib_bail("nsexec: create cgroup namespace: %m");
	/* Confined before RUNNING, so a failure is the launcher's error. */
#ifndef CRIB_NOLIBC
	if (b->role == CRIB_ROLE_PAUSE)
		crib_pause_confine();
#endif
	send_sync(CRIB_SYNC_RUNNING, NULL, 0);
#ifndef CRIB_NOLIBC
	if (b->role == CRIB_ROLE_PAUSE)
		crib_pause(initpipe);
#endif
	close_inherited_fds();
}

static void stage0(struct crib_bootstrap *b)
{
	/* Nobody in the container may ptrace us or read our memory before exec. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		crib_bail("nsexec: make the process non-dumpable: %m");
	/* First, while still in the launcher's namespaces and credentials. */
	join_cgroups_v1(b);
	open_namespaces(b);
	if (b->have_oom_score_adj)
		set_oom_score_adj(b->oom_score_adj);
	int joined_user = join_namespaces(b);
	if (b->clone_flags & CLONE_NEWUSER)
		new_userns();
	uint32_t rest = b->clone_flags & ~(uint32_t)(CLONE_NEWUSER | CLONE_NEWCGROUP);
	if (rest && unshare((int)rest) < 0)
		crib_bail("nsexec: create namespaces (flags 0x%x): %m", rest);
	/* A pid namespace's init drops signals from outside that it has no
	 * handler for, unless they are blocked (then they queue). The pause
	 * process waits for SIGTERM with sigwaitinfo: block everything before
	 * it exists, so a SIGTERM sent the moment it runs is not lost. */
#ifndef CRIB_NOLIBC /* which refuses the pause role earlier */
	if (b->role == CRIB_ROLE_PAUSE) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
	}
#endif
	/* CLONE_PARENT makes the final process the launcher's child, so it can
	 * wait for it directly once stage 0 has exited. */
	uint32_t flags;
	long pid = clone_final(b, joined_user, &flags);
	if (pid < 0)
		crib_bail("nsexec: clone: %m");
	if (pid == 0) {
		stage1(b);
		return;
	}
	uint32_t report[3] = {(uint32_t)pid, (uint32_t)getpid(), flags};
	send_sync(CRIB_SYNC_PID, report, sizeof(report));
	_exit(0);
}

#ifndef CRIB_NOLIBC
/* detach is the double fork of a process that must outlive its starter
 * without being its child (the pod's shim): fork, let the parent exit, and
 * go on in a new session. No Go runtime has started yet, so fork is safe. */
static void detach(void)
{
	unsetenv(CRIB_ENV_DETACH);
	pid_t pid = fork();
	if (pid < 0) {
		log_json("error", "nsexec: detach: fork failed");
		_exit(1);
	}
	if (pid > 0)
		_exit(0);
	if (setsid() < 0) {
		log_json("error", "nsexec: detach: setsid failed");
		_exit(1);
	}
}
#endif

/* crib_nsexec runs only in a process started with the init pipe in its
 * environment; in every other process (the daemon, tests) it returns at
 * once. The build without libc calls it from its entry (nolibc.c). */
#ifdef CRIB_NOLIBC
void crib_nsexec_run(void)
#else
__attribute__((constructor)) static void crib_nsexec(void)
#endif
{
	if (getenv(CRIB_ENV_DETACH)) {
#ifdef CRIB_NOLIBC
		/* Only the shim detaches, and it links libc. */
		log_json("error", "nsexec: this binary does not detach");
		_exit(1);
#else
		detach();
#endif
	}
	initpipe = env_fd(CRIB_ENV_INITPIPE);
	if (initpipe < 0)
		return;
	logpipe = env_fd(CRIB_ENV_LOGPIPE);
	struct crib_bootstrap b;
	read_bootstrap(&b);
#ifdef CRIB_NOLIBC
	/* Before anything is joined or created. */
	if (b.role == CRIB_ROLE_PAUSE)
		crib_bail("nsexec: the pause process runs from crib-shim, not from this binary");
#endif
	stage0(&b);
}
