/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pod sandbox's pause process for the test cluster's local image
 * (localhost/warren-pause): holds the pod's namespaces, reaps orphans
 * (it is PID 1 of the pod) and exits on SIGINT/SIGTERM. Built static, so
 * the image is this one file.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void pause_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void pause_reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction stop = {.sa_handler = pause_stop}, reap = {.sa_handler = pause_reap, .sa_flags = SA_NOCLDSTOP};

	if (getpid() != 1)
		return 1;
	if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
	    sigaction(SIGCHLD, &reap, NULL) < 0)
		return 1;
	for (;;)
		pause();
}
