/* The pause role: pid 1 of a pod that shares one pid namespace. It runs in the
 * constructor, so the Go runtime never starts and the process stays small. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nsexec.h"

void crib_pause(void)
{
	sigset_t all, wanted;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGCHLD);
	sigaddset(&wanted, SIGTERM);
	sigaddset(&wanted, SIGINT);
	if (chdir("/") < 0)
		_exit(1);
	for (;;) {
		int sig = sigwaitinfo(&wanted, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
		/* SIGCHLD, or EINTR: reap every orphan that ended. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
