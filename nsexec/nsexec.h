#ifndef CRIB_NSEXEC_H
#define CRIB_NSEXEC_H

/* crib_bail fails the start: one JSON log line on the log pipe, the same
 * text as a SYNC_ERROR for the launcher to report verbatim, then _exit(1). */
__attribute__((noreturn, format(printf, 1, 2))) void crib_bail(const char *fmt, ...);

/* crib_pause_confine takes from the pause process everything it does not need
 * to wait for signals: the host's files (its root becomes an empty read-only
 * tmpfs in a mount namespace of its own), every capability, the right to gain
 * privileges, and dumpability. It runs while the init and log pipes are still
 * open, so a failure reaches the launcher. */
void crib_pause_confine(void);

/* crib_pause is a pod's pid 1: it closes every fd it inherited, initpipe last
 * (its EOF tells the launcher the pause holds no fd), reaps zombies and exits
 * on SIGTERM or SIGINT; every other signal is blocked. It never returns. */
__attribute__((noreturn)) void crib_pause(int initpipe);

#endif
