//go:build ignore

/*
 * See nolibc.h: the libc subset of crib-init's build without libc, and its
 * entry, crib_nolibc_main, which nsexec/nolibc's assembly calls on the
 * process's initial stack before it jumps to the Go runtime's.
 *
 * Compiled only by hack/nolibc.sh (CRIB_NOLIBC); nsexec's cgo build never
 * sees this file.
 */
#ifndef CRIB_NOLIBC
#error "nolibc.c is built only by hack/nolibc.sh"
#endif
#include "nolibc.h"

long nx_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

/* nx_errno_ret turns the kernel's -errno into libc's -1 and errno. */
long nx_errno_ret(long ret)
{
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

ssize_t read(int fd, void *buf, size_t len) { return syscall(__NR_read, fd, buf, len); }
ssize_t write(int fd, const void *buf, size_t len) { return syscall(__NR_write, fd, buf, len); }
int open(const char *path, int flags) { return (int)syscall(__NR_openat, AT_FDCWD, path, flags, 0); }
int close(int fd) { return (int)syscall(__NR_close, fd); }
int fstatfs(int fd, struct statfs *st) { return (int)syscall(__NR_fstatfs, fd, st); }
int ioctl(int fd, unsigned long req) { return (int)syscall(__NR_ioctl, fd, req); }
int setns(int fd, int type) { return (int)syscall(__NR_setns, fd, type); }
int unshare(int flags) { return (int)syscall(__NR_unshare, flags); }
pid_t getpid(void) { return (pid_t)nx_raw(__NR_getpid); }
ssize_t readlink(const char *path, char *buf, size_t len) { return syscall(__NR_readlinkat, AT_FDCWD, path, buf, len); }
int fcntl(int fd, int cmd, long arg) { return (int)syscall(__NR_fcntl, fd, cmd, arg); }
int getrlimit(int resource, struct rlimit *rl) { return (int)syscall(__NR_getrlimit, resource, rl); }
int setresuid(unsigned r, unsigned e, unsigned s) { return (int)syscall(__NR_setresuid, r, e, s); }
int setresgid(unsigned r, unsigned e, unsigned s) { return (int)syscall(__NR_setresgid, r, e, s); }
int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
	return (int)syscall(__NR_prctl, option, a2, a3, a4, a5);
}
void _exit(int status)
{
	for (;;)
		nx_raw(__NR_exit_group, status);
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* The compiler emits calls to these for struct copies and zeroing. */
void *memset(void *dst, int c, size_t n)
{
	unsigned char *d = dst;
	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

void *memchr(const void *s, int c, size_t n)
{
	const unsigned char *p = s;
	for (; n; n--, p++)
		if (*p == (unsigned char)c)
			return (void *)p;
	return NULL;
}

char *getenv(const char *name)
{
	size_t n = strlen(name);
	for (char **e = NX->envp; *e; e++) {
		size_t i = 0;
		while (i < n && (*e)[i] == name[i])
			i++;
		if (i == n && (*e)[n] == '=')
			return *e + n + 1;
	}
	return NULL;
}

/* strtol in base 10 only, the one nsexec uses; it saturates instead of
 * overflowing, which the callers' range checks then refuse. */
long strtol(const char *s, char **end, int base)
{
	(void)base;
	const char *p = s;
	int neg = 0;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	long v = 0;
	const char *digits = p;
	for (; *p >= '0' && *p <= '9'; p++)
		v = v > (0x7fffffffffffffffL - 9) / 10 ? 0x7fffffffffffffffL : v * 10 + (*p - '0');
	if (end)
		*end = (char *)(p == digits ? s : p);
	return neg ? -v : v;
}

/* strerror's text for what nsexec's calls can fail with; others by number. */
static const char *errtext(int e)
{
	switch (e) {
	case 0: return "Success";
	case EPERM: return "Operation not permitted";
	case ENOENT: return "No such file or directory";
	case ESRCH: return "No such process";
	case EINTR: return "Interrupted system call";
	case EIO: return "Input/output error";
	case ENXIO: return "No such device or address";
	case ECHILD: return "No child processes";
	case E2BIG: return "Argument list too long";
	case EBADF: return "Bad file descriptor";
	case EAGAIN: return "Resource temporarily unavailable";
	case ENOMEM: return "Cannot allocate memory";
	case EACCES: return "Permission denied";
	case EFAULT: return "Bad address";
	case EBUSY: return "Device or resource busy";
	case EEXIST: return "File exists";
	case EXDEV: return "Invalid cross-device link";
	case ENODEV: return "No such device";
	case ENOTDIR: return "Not a directory";
	case EISDIR: return "Is a directory";
	case EINVAL: return "Invalid argument";
	case ENFILE: return "Too many open files in system";
	case EMFILE: return "Too many open files";
	case ENOTTY: return "Inappropriate ioctl for device";
	case ETXTBSY: return "Text file busy";
	case ENOSPC: return "No space left on device";
	case EROFS: return "Read-only file system";
	case EPIPE: return "Broken pipe";
	case ERANGE: return "Numerical result out of range";
	case ENAMETOOLONG: return "File name too long";
	case ENOSYS: return "Function not implemented";
	case ELOOP: return "Too many levels of symbolic links";
	case EOVERFLOW: return "Value too large for defined data type";
	case EUSERS: return "Too many users";
	case EOPNOTSUPP: return "Operation not supported";
	case EDQUOT: return "Disk quota exceeded";
	}
	return NULL;
}

struct out {
	char *buf;
	size_t size, n;
};

static void put(struct out *o, char c)
{
	if (o->n + 1 < o->size)
		o->buf[o->n] = c;
	o->n++;
}

static void puts_(struct out *o, const char *s)
{
	while (*s)
		put(o, *s++);
}

static void putnum(struct out *o, unsigned long v, int neg, unsigned base, int width, char pad)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	int len = i + neg;
	/* The sign goes before zeros ("-007") and after spaces ("  -7"). */
	if (neg && pad == '0')
		put(o, '-');
	for (int w = len; w < width; w++)
		put(o, pad);
	if (neg && pad != '0')
		put(o, '-');
	while (i)
		put(o, tmp[--i]);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};
	int saved = errno;
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			put(&o, *f);
			continue;
		}
		f++;
		char pad = ' ';
		if (*f == '0') {
			pad = '0';
			f++;
		}
		int width = 0;
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (*f++ - '0');
		int lng = 0;
		if (*f == 'l' || *f == 'z') {
			lng = 1;
			f++;
		}
		switch (*f) {
		case 'd':
		case 'i': {
			long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			putnum(&o, v < 0 ? 0UL - (unsigned long)v : (unsigned long)v, v < 0, 10, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			unsigned long v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
			putnum(&o, v, 0, *f == 'x' ? 16 : 10, width, pad);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			puts_(&o, s ? s : "(null)");
			break;
		}
		case 'm': {
			const char *t = errtext(saved);
			if (t)
				puts_(&o, t);
			else {
				puts_(&o, "errno ");
				putnum(&o, (unsigned long)saved, 0, 10, 0, ' ');
			}
			break;
		}
		case '%':
			put(&o, '%');
			break;
		default:
			/* A conversion this formatter lacks is a bug in a format
			 * string (gcc's -Wformat accepts every printf one). Its
			 * argument's type is unknown, so no later one can be read
			 * safely: show it and stop. */
			puts_(&o, "%?");
			goto done;
		}
	}
done:
	if (size)
		buf[o.n < size ? o.n : size - 1] = '\0';
	return (int)o.n;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/* crib_nolibc_main runs first in the process, on the stack the kernel made:
 * argc, then argv, NULL, envp, NULL, auxv. It must come first in the blob
 * (hack/nolibc.sh links its section first). It returns to the Go runtime's
 * entry in the process that goes on: the final process, or any process
 * started without the init pipe. Stage 0 never returns. */
__attribute__((section(".text.entry"), used)) void crib_nolibc_main(long *sp)
{
	long addr = nx_raw(__NR_mmap, NX_STATE_ADDR, NX_STATE_SIZE, 3 /* PROT_READ|PROT_WRITE */,
			   0x22 | 0x100000 /* MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE */, -1, 0);
	if (addr != (long)NX_STATE_ADDR) {
		static const char msg[] = "{\"level\":\"error\",\"msg\":\"nsexec: map the state page failed\"}\n";
		nx_raw(__NR_write, STDERR_FILENO, msg, sizeof(msg) - 1);
		for (;;)
			nx_raw(__NR_exit_group, 1);
	}
	NX->initpipe = -1;
	NX->logpipe = -1;
	NX->envp = (char **)(sp + 1 + sp[0] + 1);
	crib_nsexec_run();
	nx_raw(__NR_munmap, NX_STATE_ADDR, NX_STATE_SIZE);
}
