/* SPDX-License-Identifier: Apache-2.0 */
/*
 * connrate: TCP connection-rate and idle-connection load for the benchmark
 * (tests/bench/run.sh). Single-threaded, epoll, no allocation per
 * connection after start.
 *
 *   connrate server PORT SIZE
 *       [::]:PORT (dual-stack). Echoes what it reads; once SIZE bytes have
 *       been echoed (SIZE > 0) it closes first, so TIME_WAIT lands on the
 *       server side and the client's ephemeral ports stay reusable. SIZE 0:
 *       echo until the peer's EOF.
 *   connrate rate HOST PORT SECS CONC SIZE [RATE]
 *       Keeps CONC connections in flight for SECS seconds; each one
 *       connects, sends SIZE bytes, reads SIZE bytes back and the server's
 *       EOF, then closes. RATE > 0 paces new connections at RATE per second
 *       (CONC is then the cap in flight). Prints one line:
 *       "conns N secs S rate R/s errors E p50_us X p99_us Y"
 *       (latency: connect() to EOF of one connection).
 *   connrate hold HOST PORT N
 *       Opens N connections, one 1-byte round trip on each (so every relay
 *       on the path is set up), prints "ready N" and keeps them open until
 *       SIGTERM/SIGINT.
 * Exit status: 0, 1 on a setup error, 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/tools/loadtool.h"

#define MAX_EVENTS 256
#define MAX_SAMPLES (4u << 20)

static char buf[65536];

/* --- server --- */

struct sconn {
	long echoed;
};

static int run_server(const char *port, long size)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct epoll_event ev = { .events = EPOLLIN }, evs[MAX_EVENTS];
	struct sconn *conns;
	int lfd, ep, one = 1, zero = 0;
	struct rlimit rl;

	raise_nofile();
	getrlimit(RLIMIT_NOFILE, &rl);
	conns = calloc(rl.rlim_cur, sizeof(*conns));
	sa.sin6_port = htons((uint16_t)atoi(port));
	lfd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || lfd < 0 || ep < 0 ||
	    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
		fprintf(stderr, "connrate: cannot listen on [::]:%s: %s\n", port, strerror(errno));
		return 1;
	}
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int c;

				while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if ((rlim_t)c >= rl.rlim_cur) {
						close(c);
						continue;
					}
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					conns[c].echoed = 0;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
				continue;
			}
			for (;;) {
				ssize_t r = read(fd, buf, sizeof(buf));

				if (r > 0) {
					/* small echoes: the socket buffer takes them whole */
					if (write(fd, buf, r) != r) {
						close(fd);
						break;
					}
					conns[fd].echoed += r;
					if (size > 0 && conns[fd].echoed >= size) {
						close(fd);
						break;
					}
					continue;
				}
				if (r < 0 && errno == EAGAIN)
					break;
				close(fd); /* EOF or error */
				break;
			}
		}
	}
}

/* --- clients --- */

struct cconn {
	int fd;
	bool sent;
	long got;
	uint64_t t0;
};

static struct addrinfo *target;
static int ep = -1;
static volatile sig_atomic_t stop;

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static int cconn_open(struct cconn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
	int one = 1;

	c->fd = socket(target->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->sent = false;
	c->got = 0;
	c->t0 = now_us();
	if (connect(c->fd, target->ai_addr, target->ai_addrlen) < 0 && errno != EINPROGRESS) {
		int ret = -errno;

		close(c->fd);
		c->fd = -1;
		return ret;
	}
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	return 0;
}

/* 1: finished (EOF after SIZE bytes, or SIZE bytes in hold mode),
 * 0: in progress, -1: failed. Edge-triggered: drain until EAGAIN. */
static int cconn_step(struct cconn *c, uint32_t events, long size, bool hold)
{
	if (events & EPOLLERR)
		return -1;
	if (!c->sent && (events & EPOLLOUT)) {
		if (send(c->fd, buf, size, MSG_NOSIGNAL) != size)
			return errno == EAGAIN ? 0 : -1;
		c->sent = true;
	}
	for (;;) {
		ssize_t r = read(c->fd, buf + sizeof(buf) / 2, sizeof(buf) / 2);

		if (r > 0) {
			c->got += r;
			if (hold && c->got >= size)
				return 1;
			continue;
		}
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r == 0 && !hold && c->got >= size)
			return 1;
		return -1;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int run_rate(double secs, int conc, long size, double rate)
{
	struct epoll_event evs[MAX_EVENTS];
	struct cconn *cs = calloc(conc, sizeof(*cs));
	uint32_t *lat = malloc(MAX_SAMPLES * sizeof(*lat));
	uint64_t start = now_us(), end = start + (uint64_t)(secs * 1e6), opened = 0, t;
	unsigned long done = 0, errors = 0, inflight = 0;
	int *freelist = malloc(conc * sizeof(int)), nfree = conc;

	if (!cs || !lat || !freelist)
		return 1;
	for (int i = 0; i < conc; i++) {
		cs[i].fd = -1;
		freelist[i] = conc - 1 - i;
	}
	while ((t = now_us()) < end) {
		int n, timeout = 1;

		/* open what the pace (or the concurrency) allows */
		while (nfree > 0 && (rate <= 0 || opened < (uint64_t)((t - start) * rate / 1e6) + 1)) {
			struct cconn *c = &cs[freelist[--nfree]];

			opened++;
			if (cconn_open(c) < 0) {
				errors++;
				freelist[nfree++] = c - cs;
				break;
			}
			inflight++;
		}
		if (rate <= 0 && nfree == 0)
			timeout = 10;
		n = epoll_wait(ep, evs, MAX_EVENTS, timeout);
		for (int i = 0; i < n; i++) {
			struct cconn *c = evs[i].data.ptr;
			int r = cconn_step(c, evs[i].events, size, false);

			if (!r)
				continue;
			if (r > 0) {
				if (done < MAX_SAMPLES)
					lat[done] = (uint32_t)(now_us() - c->t0);
				done++;
			} else {
				errors++;
			}
			close(c->fd);
			c->fd = -1;
			inflight--;
			freelist[nfree++] = c - cs;
		}
	}
	t = now_us();
	{
		unsigned long ns = done < MAX_SAMPLES ? done : MAX_SAMPLES;
		double el = (t - start) / 1e6;

		qsort(lat, ns, sizeof(*lat), cmp_u32);
		printf("conns %lu secs %.2f rate %.0f errors %lu p50_us %u p99_us %u\n", done, el,
		       done / el, errors, ns ? lat[(ns - 1) / 2] : 0,
		       ns ? lat[(99 * ns + 99) / 100 - 1] : 0);
	}
	fflush(stdout);
	return 0;
}

static int run_hold(int n)
{
	struct epoll_event evs[MAX_EVENTS];
	struct cconn *cs = calloc(n, sizeof(*cs));
	int ready = 0, opened = 0, pending = 0;
	uint64_t deadline = now_us() + 60 * 1000000ull;

	if (!cs)
		return 1;
	/* at most 64 handshakes at a time: a listener backlog is finite */
	while (ready < n) {
		int k;

		while (opened < n && pending < 64) {
			if (cconn_open(&cs[opened]) < 0) {
				fprintf(stderr, "connrate: connect #%d failed: %s\n", opened, strerror(errno));
				return 1;
			}
			opened++;
			pending++;
		}
		if (now_us() > deadline) {
			fprintf(stderr, "connrate: only %d of %d connections echoed within 60 s\n", ready, n);
			return 1;
		}
		k = epoll_wait(ep, evs, MAX_EVENTS, 100);
		for (int i = 0; i < k; i++) {
			struct cconn *c = evs[i].data.ptr;
			int r;

			if (c->got >= 1)
				continue;
			r = cconn_step(c, evs[i].events, 1, true);
			if (r < 0) {
				fprintf(stderr, "connrate: connection #%ld failed\n", (long)(c - cs));
				return 1;
			}
			if (r > 0) {
				ready++;
				pending--;
			}
		}
	}
	printf("ready %d\n", ready);
	fflush(stdout);
	while (!stop)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	int err;

	if (argc == 4 && !strcmp(argv[1], "server"))
		return run_server(argv[2], atol(argv[3]));
	if (argc < 5 || (strcmp(argv[1], "rate") && strcmp(argv[1], "hold")) ||
	    (!strcmp(argv[1], "rate") && argc != 7 && argc != 8) ||
	    (!strcmp(argv[1], "hold") && argc != 5)) {
		fprintf(stderr, "usage: connrate server PORT SIZE\n"
				"       connrate rate HOST PORT SECS CONC SIZE [RATE]\n"
				"       connrate hold HOST PORT N\n");
		return 2;
	}
	err = getaddrinfo(argv[2], argv[3], &hints, &target);
	if (err) {
		fprintf(stderr, "connrate: cannot resolve %s:%s: %s\n", argv[2], argv[3], gai_strerror(err));
		return 1;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return 1;
	memset(buf, 'x', sizeof(buf));
	if (!strcmp(argv[1], "hold"))
		return run_hold(atoi(argv[4]));
	{
		long size = atol(argv[6]);

		if (size < 1 || size > (long)sizeof(buf) / 2) {
			fprintf(stderr, "connrate: SIZE must be 1..%zu\n", sizeof(buf) / 2);
			return 2;
		}
		return run_rate(atof(argv[4]), atoi(argv[5]), size, argc == 8 ? atof(argv[7]) : 0);
	}
}
