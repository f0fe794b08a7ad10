#ifndef CRIB_NSEXEC_H
#define CRIB_NSEXEC_H

/* crib_pause is a pod's pid 1: it reaps zombies and exits on SIGTERM or
 * SIGINT; every other signal is blocked. It never returns. */
__attribute__((noreturn)) void crib_pause(void);

#endif
