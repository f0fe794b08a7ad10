/* See decode.h. Compiled into nsexec and into the fuzz harness. */
#ifdef CRIB_NOLIBC
#include "nolibc.h"
#else
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdio.h>
#include <string.h>
#endif

#include "decode.h"

#define ALL_NEW_NS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | \
		    CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWTIME)

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

const char *crib_ns_name(uint32_t type)
{
	switch (type) {
	case CLONE_NEWUSER: return "user";
	case CLONE_NEWNS: return "mnt";
	case CLONE_NEWUTS: return "uts";
	case CLONE_NEWIPC: return "ipc";
	case CLONE_NEWPID: return "pid";
	case CLONE_NEWNET: return "net";
	case CLONE_NEWCGROUP: return "cgroup";
	case CLONE_NEWTIME: return "time";
	}
	return NULL;
}

long crib_decode_header(const uint8_t *hdr, size_t len, char *err, size_t errlen)
{
	if (len < CRIB_HEADER_SIZE) {
		snprintf(err, errlen, "bootstrap header: short read (%zu of %d bytes)", len, CRIB_HEADER_SIZE);
		return -1;
	}
	if (get_u32(hdr) != CRIB_BOOTSTRAP_MAGIC) {
		snprintf(err, errlen, "bootstrap header: bad magic 0x%08x", get_u32(hdr));
		return -1;
	}
	if (get_u32(hdr + 4) != CRIB_BOOTSTRAP_VERSION) {
		snprintf(err, errlen, "bootstrap header: version %u, want %d", get_u32(hdr + 4), CRIB_BOOTSTRAP_VERSION);
		return -1;
	}
	uint32_t n = get_u32(hdr + 8);
	if (n > CRIB_BOOTSTRAP_MAX) {
		snprintf(err, errlen, "bootstrap header: length %u exceeds %d", n, CRIB_BOOTSTRAP_MAX);
		return -1;
	}
	return (long)n;
}

static int add_ns(struct crib_bootstrap *b, const uint8_t *v, size_t vlen, int by_fd, char *err, size_t errlen)
{
	if (vlen < 4 || (by_fd && vlen != 8)) {
		snprintf(err, errlen, "bootstrap: namespace attribute of %zu bytes is malformed", vlen);
		return -1;
	}
	uint32_t type = get_u32(v);
	if (!crib_ns_name(type)) {
		snprintf(err, errlen, "bootstrap: unknown namespace type 0x%x", type);
		return -1;
	}
	for (size_t i = 0; i < b->nns; i++) {
		if (b->ns[i].type == type) {
			snprintf(err, errlen, "bootstrap: %s namespace given twice", crib_ns_name(type));
			return -1;
		}
	}
	struct crib_ns *ns = &b->ns[b->nns];
	ns->type = type;
	ns->fd = -1;
	ns->path[0] = '\0';
	if (by_fd) {
		int32_t fd = (int32_t)get_u32(v + 4);
		if (fd < 3) {
			snprintf(err, errlen, "bootstrap: %s namespace fd %d is not an inherited fd", crib_ns_name(type), fd);
			return -1;
		}
		ns->fd = fd;
	} else {
		size_t plen = vlen - 4;
		if (plen == 0 || plen > CRIB_PATH_MAX || memchr(v + 4, '\0', plen) || v[4] != '/') {
			snprintf(err, errlen, "bootstrap: %s namespace path of %zu bytes is not an absolute path",
				 crib_ns_name(type), plen);
			return -1;
		}
		memcpy(ns->path, v + 4, plen);
		ns->path[plen] = '\0';
	}
	b->nns++; /* bounded: 8 distinct types exist and CRIB_MAX_NAMESPACES is 8 */
	return 0;
}

static int add_tasks_fd(struct crib_bootstrap *b, const uint8_t *v, size_t vlen, char *err, size_t errlen)
{
	if (vlen != 4) {
		snprintf(err, errlen, "bootstrap: cgroup tasks attribute has %zu bytes, want 4", vlen);
		return -1;
	}
	int32_t fd = (int32_t)get_u32(v);
	if (fd < 3) {
		snprintf(err, errlen, "bootstrap: cgroup tasks fd %d is not an inherited fd", fd);
		return -1;
	}
	if (b->ntasks == CRIB_MAX_CGROUP_TASKS) {
		snprintf(err, errlen, "bootstrap: more than %d cgroup tasks fds", CRIB_MAX_CGROUP_TASKS);
		return -1;
	}
	b->tasks_fd[b->ntasks++] = fd;
	return 0;
}

/* check_once rejects an attribute that may appear only once. */
static int check_once(uint32_t *seen, uint16_t type, char *err, size_t errlen)
{
	if (*seen & (1u << type)) {
		snprintf(err, errlen, "bootstrap: attribute %u given twice", type);
		return -1;
	}
	*seen |= 1u << type;
	return 0;
}

static int decode_attr(struct crib_bootstrap *b, uint16_t type, const uint8_t *v, size_t vlen, uint32_t *seen,
		       char *err, size_t errlen)
{
	switch (type) {
	case CRIB_ATTR_NS_PATH:
	case CRIB_ATTR_NS_FD:
		return add_ns(b, v, vlen, type == CRIB_ATTR_NS_FD, err, errlen);
	case CRIB_ATTR_CGROUP_TASKS_FD:
		return add_tasks_fd(b, v, vlen, err, errlen);
	case CRIB_ATTR_ROLE:
	case CRIB_ATTR_CLONE_FLAGS:
	case CRIB_ATTR_OOM_SCORE_ADJ:
	case CRIB_ATTR_CGROUP2_FD:
		break;
	default:
		snprintf(err, errlen, "bootstrap: unknown attribute type %u", type);
		return -1;
	}
	if (check_once(seen, type, err, errlen) < 0)
		return -1;
	if (vlen != 4) {
		snprintf(err, errlen, "bootstrap: attribute %u has %zu bytes, want 4", type, vlen);
		return -1;
	}
	uint32_t val = get_u32(v);
	if (type == CRIB_ATTR_ROLE) {
		if (val != CRIB_ROLE_INIT && val != CRIB_ROLE_EXEC && val != CRIB_ROLE_PAUSE) {
			snprintf(err, errlen, "bootstrap: unknown role %u", val);
			return -1;
		}
		b->role = val;
	} else if (type == CRIB_ATTR_CLONE_FLAGS) {
		if (val & ~(uint32_t)ALL_NEW_NS) {
			snprintf(err, errlen, "bootstrap: clone flags 0x%x include non-namespace bits 0x%x", val,
				 val & ~(uint32_t)ALL_NEW_NS);
			return -1;
		}
		b->clone_flags = val;
	} else if (type == CRIB_ATTR_CGROUP2_FD) {
		if ((int32_t)val < 3) {
			snprintf(err, errlen, "bootstrap: cgroup2 fd %d is not an inherited fd", (int32_t)val);
			return -1;
		}
		b->cgroup2_fd = (int)val;
	} else {
		int32_t adj = (int32_t)val;
		if (adj < -1000 || adj > 1000) {
			snprintf(err, errlen, "bootstrap: oom_score_adj %d out of range -1000..1000", adj);
			return -1;
		}
		b->oom_score_adj = adj;
		b->have_oom_score_adj = 1;
	}
	return 0;
}

int crib_decode_attrs(const uint8_t *buf, size_t len, struct crib_bootstrap *b, char *err, size_t errlen)
{
	uint32_t seen = 0;
	memset(b, 0, sizeof(*b));
	for (size_t off = 0; off < len;) {
		if (len - off < CRIB_ATTR_HEADER_SIZE) {
			snprintf(err, errlen, "bootstrap: truncated attribute header at offset %zu", off);
			return -1;
		}
		uint16_t type = get_u16(buf + off);
		size_t vlen = get_u16(buf + off + 2);
		off += CRIB_ATTR_HEADER_SIZE;
		if (vlen > len - off) {
			snprintf(err, errlen, "bootstrap: attribute %u of %zu bytes overruns the message (%zu left)", type,
				 vlen, len - off);
			return -1;
		}
		if (decode_attr(b, type, buf + off, vlen, &seen, err, errlen) < 0)
			return -1;
		off += vlen;
	}
	if (!b->role) {
		snprintf(err, errlen, "bootstrap: no role");
		return -1;
	}
	for (size_t i = 0; i < b->nns; i++) {
		if (b->clone_flags & b->ns[i].type) {
			snprintf(err, errlen, "bootstrap: %s namespace both joined and created", crib_ns_name(b->ns[i].type));
			return -1;
		}
	}
	return 0;
}
