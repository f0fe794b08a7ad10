/*
 * The part of libc that nsexec.c and decode.c use, for crib-init's build
 * without libc (CRIB_NOLIBC, nolibc.c). glibc's static start-up probes the
 * CPU's caches with some 70 CPUID instructions, each a trap to the
 * hypervisor on a virtual machine (~10 µs each here), and cgo's threads cost
 * more again: together ~1.5 ms of CPU in every container start and exec.
 * Without libc, crib-init is a plain Go binary whose entry point
 * (nsexec/nolibc) runs this code on the initial stack, then the Go runtime.
 *
 * Only the kernel's uapi headers and the compiler's freestanding headers are
 * included. The names are libc's, so nsexec.c reads the same in both builds;
 * errno, the two pipe fds and the bootstrap buffer live on pages at a fixed
 * address (NX), since the code is linked into one read-only blob without
 * relocations.
 */
#ifndef CRIB_NSEXEC_NOLIBC_H
#define CRIB_NSEXEC_NOLIBC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <asm/signal.h>
#include <asm/statfs.h>
#include <asm/unistd.h>
#include <linux/errno.h>
#include <linux/fcntl.h>
#include <linux/resource.h>
#include <linux/sched.h>

#include "protocol.h"

typedef long ssize_t;
typedef int pid_t;

#define STDERR_FILENO 2
#define NULL ((void *)0)

/* The state pages: mapped by crib_nolibc_main before anything else runs,
 * unmapped before the Go runtime starts. The bootstrap message is read
 * into them rather than onto the initial stack. */
struct nx_state {
	int err;
	int initpipe;
	int logpipe;
	char **envp;
	uint8_t bootstrap[CRIB_BOOTSTRAP_MAX];
};
#define NX_STATE_ADDR 0x1e0000000000UL
#define NX_STATE_SIZE ((sizeof(struct nx_state) + 4095) & ~4095UL)
#define NX ((struct nx_state *)NX_STATE_ADDR)
#define errno (NX->err)

/* nx_raw is the system call itself: the kernel's -errno on failure. */
long nx_syscall6(long n, long a, long b, long c, long d, long e, long f);
#define nx_raw_(n, a, b, c, d, e, f, ...)                                                                         \
	nx_syscall6((long)(n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))
#define nx_raw(...) nx_raw_(__VA_ARGS__, 0, 0, 0, 0, 0, 0)
/* syscall is libc's: -1 with errno set on failure. */
long nx_errno_ret(long ret);
#define syscall(...) nx_errno_ret(nx_raw(__VA_ARGS__))
#define SYS_clone __NR_clone
#define SYS_clone3 __NR_clone3
#define SYS_close_range __NR_close_range

ssize_t read(int fd, void *buf, size_t len);
ssize_t write(int fd, const void *buf, size_t len);
int open(const char *path, int flags);
int close(int fd);
int fstatfs(int fd, struct statfs *st);
int ioctl(int fd, unsigned long req);
int setns(int fd, int type);
int unshare(int flags);
pid_t getpid(void);
ssize_t readlink(const char *path, char *buf, size_t len);
int fcntl(int fd, int cmd, long arg);
int getrlimit(int resource, struct rlimit *rl);
int setresuid(unsigned r, unsigned e, unsigned s);
int setresgid(unsigned r, unsigned e, unsigned s);
int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
__attribute__((noreturn)) void _exit(int status);

char *getenv(const char *name);
long strtol(const char *s, char **end, int base);
size_t strlen(const char *s);
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memchr(const void *s, int c, size_t n);
/* The conversions nsexec uses: %d %i %u %x %c %s %m %%, with a 0 flag, a
 * width, and the l and z lengths. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) int snprintf(char *buf, size_t size, const char *fmt, ...);

/* nsexec.c's constructor body, which crib_nolibc_main calls. */
void crib_nsexec_run(void);

#endif
