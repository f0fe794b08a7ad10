/* The bootstrap decoder: pure functions, no I/O, so it can be fuzzed alone. */
#ifndef CRIB_NSEXEC_DECODE_H
#define CRIB_NSEXEC_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct crib_ns {
	uint32_t type;                  /* one CLONE_NEW* bit */
	int fd;                         /* inherited fd, or -1 when path is used */
	char path[CRIB_PATH_MAX + 1];   /* NUL-terminated; empty when fd is used */
};

struct crib_bootstrap {
	uint32_t role;
	uint32_t clone_flags;
	int have_oom_score_adj;
	int32_t oom_score_adj;
	size_t nns;
	struct crib_ns ns[CRIB_MAX_NAMESPACES];
	size_t ntasks;
	int tasks_fd[CRIB_MAX_CGROUP_TASKS]; /* cgroup v1 "tasks" files to write "0" to */
	int cgroup2_fd;                      /* cgroup v2 directory to clone into; 0: none */
};

/* crib_decode_header checks a 12-byte header and returns the length of the
 * attribute block that follows, or -1 with a message in err. */
long crib_decode_header(const uint8_t *hdr, size_t len, char *err, size_t errlen);

/* crib_decode_attrs parses an attribute block of exactly len bytes into b.
 * It returns 0, or -1 with a message in err. It never reads past buf+len. */
int crib_decode_attrs(const uint8_t *buf, size_t len, struct crib_bootstrap *b, char *err, size_t errlen);

/* crib_ns_name names a CLONE_NEW* type ("net", "user", ...), or NULL. */
const char *crib_ns_name(uint32_t type);

#endif
