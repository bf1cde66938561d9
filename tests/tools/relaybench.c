/* SPDX-License-Identifier: Apache-2.0 */
/*
 * relaybench LISTEN_PORT TARGET_HOST TARGET_PORT
 *
 * Accepts on 127.0.0.1:LISTEN_PORT and relays each connection to the
 * target with tunnel/relay.c, so the relay can be compared with a direct
 * connection (iperf3 on loopback). Prints one line per finished relay to
 * stderr. Runs until SIGINT/SIGTERM (taken through a signalfd).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tunnel/loop.h"
#include "tunnel/relay.h"

static struct addrinfo *target;

static void on_done(void *ctx, const struct relay_stats *st)
{
	fprintf(stderr, "relaybench: relay done: %s (%s), %llu bytes out, %llu bytes back\n",
		st->reason, st->error ? strerror(st->error) : "no error",
		(unsigned long long)st->a_to_b, (unsigned long long)st->b_to_a);
}

static void on_accept(struct loop *l, int lfd, uint32_t events, void *ctx)
{
	struct relay *r;
	int a, b, one = 1, ret;

	a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (a < 0)
		return;
	b = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* A blocking connect keeps the tool small; the target is local. */
	if (b < 0 || connect(b, target->ai_addr, target->ai_addrlen) < 0) {
		fprintf(stderr, "relaybench: cannot connect to the target: %s\n", strerror(errno));
		close(a);
		if (b >= 0)
			close(b);
		return;
	}
	setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ret = relay_start(l, a, b, on_done, NULL, &r);
	if (ret < 0)
		fprintf(stderr, "relaybench: relay_start: %s\n", strerror(-ret));
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *ctx)
{
	loop_stop(l);
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct loop *l = NULL;
	sigset_t sigs;
	int lfd = -1, sfd = -1, one = 1, ret = 1, err;

	if (argc != 4) {
		fprintf(stderr, "usage: relaybench LISTEN_PORT TARGET_HOST TARGET_PORT\n");
		return 2;
	}
	err = getaddrinfo(argv[2], argv[3], &hints, &target);
	if (err) {
		fprintf(stderr, "relaybench: cannot resolve %s:%s: %s\n", argv[2], argv[3],
			gai_strerror(err));
		return 1;
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	l = loop_new();
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (!l || lfd < 0 || sfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0 ||
	    loop_add(l, lfd, EPOLLIN, on_accept, NULL) < 0 ||
	    loop_add(l, sfd, EPOLLIN, on_signal, NULL) < 0) {
		fprintf(stderr, "relaybench: cannot listen on 127.0.0.1:%s: %s\n", argv[1],
			strerror(errno));
		goto out;
	}
	ret = loop_run(l) < 0;
out:
	/* Relays still open at exit are left to the kernel to close. */
	if (lfd >= 0)
		close(lfd);
	if (sfd >= 0)
		close(sfd);
	loop_free(l);
	freeaddrinfo(target);
	return ret;
}
