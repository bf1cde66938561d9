/* SPDX-License-Identifier: Apache-2.0 */
/*
 * minrelay nftables|ebpf [BPF_DIR CONTAINER_ID]
 * minrelay explicit LISTEN_IP PORT TARGET_IP TARGET_PORT
 *
 * The benchmark's bound for the connection rate of a captured plaintext
 * relay (tests/bench/run.sh, section ebpf): run in an enrolled pod's netns
 * (ip netns exec) while the tunnel is stopped, it takes the tunnel's place
 * on [::]:15001 (outbound) and [::]:15006 (inbound), and in the eBPF mode
 * puts both listeners into the pod's pinned map as the tunnel does. Per
 * connection it does only what the kernel must for a captured connection
 * relayed on the pod's behalf, with the options the capture needs:
 *   accept4; the original destination (nftables: SO_ORIGINAL_DST, eBPF:
 *   getsockname); socket + SO_MARK 0x539 (else the capture takes it
 *   again); inbound: IP_TRANSPARENT and bind to the client's address (eBPF:
 *   SO_BINDTODEVICE lo); a non-blocking connect, then recv/send both ways,
 *   shutdown at the first EOF, close at the second.
 * No policy, routing, access log, metrics, timers, fail-closed socket
 * options or splice: what is left is the kernel's work per connection plus
 * one epoll loop. One thread. It relays small exchanges only: a send that
 * the peer's socket refuses (full) resets the connection and counts as cut
 * (printed at exit), which the benchmark's 1-byte exchanges never reach.
 * explicit: the same relay without capture, as haproxy's pair is run
 * (the app connects to it; IPv4): listens on LISTEN_IP:PORT, connects to
 * TARGET, no mark, no transparency. Its ratio to haproxy's pair tells this
 * relay's own cost from the capture's.
 * Runs until SIGINT/SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netlink/inpod_ebpf.h"
#include "tunnel/proxy.h"

#define MR_MARK 0x539
#define MR_BUF 16384

struct mr_conn;
struct mr_side {             /* epoll's data: one per fd */
	struct mr_conn *c;
	int i;               /* 0: accepted (app side), 1: upstream, 2: listener */
};
struct mr_conn {
	int fd[2];
	bool eof[2];         /* EOF read from fd[i] */
	bool connected;
	bool dead;           /* ended; freed after the epoll batch */
	struct mr_conn *next_dead;
	struct mr_side side[2];
};

static int mr_ep;
static bool mr_ebpf, mr_explicit;
static struct sockaddr_storage mr_target; /* explicit mode */
static volatile sig_atomic_t mr_stop;
static unsigned long mr_done, mr_failed, mr_cut;
static struct mr_conn *mr_dead; /* an event later in the batch may name them */
static struct mr_side mr_lis[2] = { { NULL, 2 }, { NULL, 2 } };
static int mr_lis_fd[2];

static void mr_end(struct mr_conn *c, bool error)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	for (int i = 0; i < 2; i++) {
		if (c->fd[i] < 0)
			continue;
		if (error)
			setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c->fd[i]);
	}
	if (error)
		mr_failed++;
	else
		mr_done++;
	c->dead = true;
	c->next_dead = mr_dead;
	mr_dead = c;
}

/* [::]:port dual-stack, or ip:port (explicit mode). */
static int mr_listen(const char *ip, int port, bool transparent)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(port),
				   .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd, zero = 0, one = 1;
	unsigned mark = MR_MARK;

	if (ip && inet_pton(AF_INET, ip, &s4.sin_addr) != 1) {
		fprintf(stderr, "minrelay: not an IPv4 address: %s\n", ip);
		exit(2);
	}
	fd = socket(ip ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (!ip && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    (!ip && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) ||
	    (transparent && (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
			     setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) < 0)) ||
	    (ip ? bind(fd, (struct sockaddr *)&s4, sizeof(s4)) : bind(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 ||
	    listen(fd, 1024) < 0) {
		fprintf(stderr, "minrelay: cannot listen on port %d: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Accepted on 15001 (inbound false) or 15006: connect upstream. */
static void mr_accept(int lfd, bool inbound)
{
	for (;;) {
		struct sockaddr_storage src, dst;
		socklen_t len = sizeof(src);
		struct epoll_event ev = { .events = EPOLLOUT };
		struct mr_conn *c;
		unsigned mark = MR_MARK;
		int fd, one = 1, ret;

		fd = accept4(lfd, (struct sockaddr *)&src, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		*c = (struct mr_conn){ .fd = { fd, -1 }, .side = { { c, 0 }, { c, 1 } } };
		ss_canonicalise(&src);
		len = sizeof(dst);
		memset(&dst, 0, sizeof(dst));
		if (mr_explicit) {
			dst = mr_target;
			ret = 0;
		} else if (mr_ebpf) {
			ret = getsockname(fd, (struct sockaddr *)&dst, &len);
		} else {
			ret = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len);
		}
		if (ret < 0) {
			mr_end(c, true);
			continue;
		}
		ss_canonicalise(&dst);
		c->fd[1] = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd[1] < 0 ||
		    (!mr_explicit && setsockopt(c->fd[1], SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)) {
			mr_end(c, true);
			continue;
		}
		if (inbound && src.ss_family == AF_INET) {
			((struct sockaddr_in *)&src)->sin_port = 0;
			if (setsockopt(c->fd[1], SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0 ||
			    (mr_ebpf && setsockopt(c->fd[1], SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) < 0) ||
			    bind(c->fd[1], (struct sockaddr *)&src, ss_len(&src)) < 0) {
				mr_end(c, true);
				continue;
			}
		}
		if (connect(c->fd[1], (struct sockaddr *)&dst, ss_len(&dst)) < 0 && errno != EINPROGRESS) {
			mr_end(c, true);
			continue;
		}
		ev.data.ptr = &c->side[1];
		if (epoll_ctl(mr_ep, EPOLL_CTL_ADD, c->fd[1], &ev) < 0)
			mr_end(c, true);
	}
}

/* Reads fd[i] and sends to fd[!i]; false when the connection ended. */
static bool mr_pump(struct mr_conn *c, int i, bool fin)
{
	char buf[MR_BUF];

	for (;;) {
		ssize_t n = recv(c->fd[i], buf, sizeof(buf), MSG_DONTWAIT), w;

		if (n < 0) {
			if (errno == EAGAIN)
				return true;
			mr_end(c, true);
			return false;
		}
		if (n == 0) {
			/* No interest left in fd[i]: its EOF (and RDHUP) would
			 * report at every round, level-triggered. */
			struct epoll_event ev = { .events = 0, .data.ptr = &c->side[i] };

			c->eof[i] = true;
			if (c->eof[!i]) {
				mr_end(c, false); /* close() sends the second FIN */
				return false;
			}
			if (shutdown(c->fd[!i], SHUT_WR) < 0 ||
			    epoll_ctl(mr_ep, EPOLL_CTL_MOD, c->fd[i], &ev) < 0) {
				mr_end(c, true);
				return false;
			}
			return true;
		}
		w = send(c->fd[!i], buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w != n) {
			if (w >= 0 || errno == EAGAIN)
				mr_cut++;
			mr_end(c, true);
			return false;
		}
		if (!fin)
			return true; /* level-triggered: more comes back */
	}
}

static void mr_event(struct mr_side *s, uint32_t events)
{
	struct mr_conn *c = s->c;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
	int err = 0;
	socklen_t len = sizeof(err);

	if (c->dead)
		return;
	if (s->i == 1 && !c->connected) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
			mr_end(c, true);
			return;
		}
		c->connected = true;
		ev.data.ptr = &c->side[1];
		if (epoll_ctl(mr_ep, EPOLL_CTL_MOD, c->fd[1], &ev) < 0) {
			mr_end(c, true);
			return;
		}
		ev.data.ptr = &c->side[0];
		if (epoll_ctl(mr_ep, EPOLL_CTL_ADD, c->fd[0], &ev) < 0)
			mr_end(c, true);
		return;
	}
	if (events & EPOLLERR) {
		mr_end(c, true);
		return;
	}
	if (!c->eof[s->i] && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
		mr_pump(c, s->i, events & (EPOLLRDHUP | EPOLLHUP));
}

static void mr_on_signal(int sig)
{
	(void)sig;
	mr_stop = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = mr_on_signal };
	struct epoll_event evs[64];
	char err[512];

	mr_ebpf = argc == 4 && !strcmp(argv[1], "ebpf");
	mr_explicit = argc == 6 && !strcmp(argv[1], "explicit");
	if (!mr_ebpf && !mr_explicit && !(argc == 2 && !strcmp(argv[1], "nftables"))) {
		fprintf(stderr, "usage: minrelay nftables | minrelay ebpf BPF_DIR CONTAINER_ID |\n"
				"       minrelay explicit LISTEN_IP PORT TARGET_IP TARGET_PORT\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	mr_ep = epoll_create1(EPOLL_CLOEXEC);
	if (mr_explicit) {
		struct sockaddr_in *t = (struct sockaddr_in *)&mr_target;

		t->sin_family = AF_INET;
		t->sin_port = htons(atoi(argv[5]));
		if (inet_pton(AF_INET, argv[4], &t->sin_addr) != 1) {
			fprintf(stderr, "minrelay: not an IPv4 address: %s\n", argv[4]);
			return 2;
		}
		/* one listener, relayed like the outbound one */
		mr_lis_fd[0] = mr_listen(argv[2], atoi(argv[3]), false);
		mr_lis_fd[1] = -1;
	} else {
		mr_lis_fd[0] = mr_listen(NULL, 15001, mr_ebpf);
		mr_lis_fd[1] = mr_listen(NULL, 15006, false);
	}
	if (mr_ebpf && ebpf_capture_publish(argv[2], argv[3], mr_lis_fd[0], mr_lis_fd[1], err, sizeof(err)) < 0) {
		fprintf(stderr, "minrelay: %s\n", err);
		return 1;
	}
	for (int k = 0; k < 2 && mr_lis_fd[k] >= 0; k++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &mr_lis[k] };

		if (epoll_ctl(mr_ep, EPOLL_CTL_ADD, mr_lis_fd[k], &ev) < 0) {
			perror("minrelay: epoll_ctl");
			return 1;
		}
	}
	fprintf(stderr, "minrelay: listening (%s)\n", argv[1]);
	while (!mr_stop) {
		int n = epoll_wait(mr_ep, evs, 64, -1);

		for (int k = 0; k < n; k++) {
			struct mr_side *s = evs[k].data.ptr;

			if (s == &mr_lis[0] || s == &mr_lis[1])
				mr_accept(mr_lis_fd[s == &mr_lis[1]], s == &mr_lis[1]);
			else
				mr_event(s, evs[k].events);
		}
		while (mr_dead) {
			struct mr_conn *c = mr_dead;

			mr_dead = c->next_dead;
			free(c);
		}
	}
	fprintf(stderr, "minrelay: %lu relayed, %lu failed (%lu cut by a full socket)\n", mr_done,
		mr_failed, mr_cut);
	return 0;
}
