/*
 * The nsexec bootstrap and sync protocol between a launcher (Go) and the
 * constructor of "crib init" (C). This header is the single source of truth:
 * nsexec/nsproto/zconst.go is generated from its #defines (go generate
 * ./nsexec/nsproto; make verify fails when the two drift).
 *
 * Every integer is little-endian (the host's order: both ends are one machine).
 *
 * Bootstrap message, launcher -> stage 0, once:
 *   header:    u32 magic, u32 version, u32 length of the attributes that follow
 *   attribute: u16 type, u16 length of the value, value (length bytes)
 *
 * Sync message, either way, any number:
 *   u32 type, u32 length of the payload, payload (length bytes)
 */
#ifndef CRIB_NSEXEC_PROTOCOL_H
#define CRIB_NSEXEC_PROTOCOL_H

#define CRIB_BOOTSTRAP_MAGIC 0x42495243 /* "CRIB" read as a little-endian u32 */
#define CRIB_BOOTSTRAP_VERSION 1
#define CRIB_HEADER_SIZE 12
#define CRIB_ATTR_HEADER_SIZE 4
/* The largest attribute block accepted: far above any real message. */
#define CRIB_BOOTSTRAP_MAX 65536
/* The longest namespace path accepted (PATH_MAX). */
#define CRIB_PATH_MAX 4096
/* At most one namespace of each of the 8 kinds. */
#define CRIB_MAX_NAMESPACES 8
/* At most this many cgroup v1 hierarchies to join. */
#define CRIB_MAX_CGROUP_TASKS 16

/* Attribute types. */
#define CRIB_ATTR_ROLE 1        /* u32, one of CRIB_ROLE_* (required, once) */
#define CRIB_ATTR_CLONE_FLAGS 2 /* u32, CLONE_NEW* flags of namespaces to create (once) */
#define CRIB_ATTR_NS_PATH 3     /* u32 CLONE_NEW* type, then the nsfs path (no NUL) */
#define CRIB_ATTR_NS_FD 4       /* u32 CLONE_NEW* type, then i32 inherited fd of an nsfs file */
#define CRIB_ATTR_OOM_SCORE_ADJ 5 /* i32, -1000..1000 (once) */
/* i32 inherited fd of a cgroup v1 "tasks" file, one per hierarchy: stage 0
 * writes "0" to each before anything else, moving its one thread without the
 * kernel's global migration lock, and the final process is born there. */
#define CRIB_ATTR_CGROUP_TASKS_FD 6
/* i32 inherited fd of a cgroup v2 directory (once): the final process is
 * cloned into it (clone3 CLONE_INTO_CGROUP), or, where the kernel refuses,
 * placed by the launcher (see CRIB_PID_IN_CGROUP2). */
#define CRIB_ATTR_CGROUP2_FD 7

/* Roles. */
#define CRIB_ROLE_INIT 1  /* a container's first process: Go init follows */
#define CRIB_ROLE_EXEC 2  /* a process joining a running container: Go init follows */
#define CRIB_ROLE_PAUSE 3 /* a pod's pid 1: the constructor never returns to Go */

/* Sync message types. */
#define CRIB_SYNC_USERMAP_REQ 1 /* child -> launcher: i32 pid; write its uid/gid maps */
#define CRIB_SYNC_USERMAP_ACK 2 /* launcher -> child: maps written, no payload */
#define CRIB_SYNC_PID 3         /* stage 0 -> launcher: i32 final pid, i32 stage 0 pid (host view), u32 CRIB_PID_* flags */
#define CRIB_SYNC_CONTINUE 4    /* launcher -> final process: placed, run; no payload */
#define CRIB_SYNC_ERROR 5       /* child -> launcher: the error text, reported verbatim */
#define CRIB_SYNC_RUNNING 6     /* final process -> launcher: constructor done, Go init (or pause) runs */
#define CRIB_SYNC_MAX 4096      /* the largest sync payload */

/* SYNC_PID flags. */
#define CRIB_PID_IN_CGROUP2 1 /* the final process was cloned into the CGROUP2_FD cgroup */

/* Environment variables naming inherited fds. */
#define CRIB_ENV_INITPIPE "_CRIB_INITPIPE"
#define CRIB_ENV_LOGPIPE "_CRIB_LOGPIPE"
/* Set for a process that must detach: the constructor forks, the parent
 * exits at once (its caller reaps it), the child starts a new session and
 * goes on into Go. A double fork without a second Go runtime start. */
#define CRIB_ENV_DETACH "_CRIB_DETACH"

#endif
