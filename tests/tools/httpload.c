/* SPDX-License-Identifier: Apache-2.0 */
/*
 * httpload: the HTTP/1.1 app and the paced keep-alive client of the
 * benchmark's waypoint section (tests/bench/waypoint.sh). Single-threaded,
 * epoll, no allocation per request.
 *
 *   httpload serve PORT SIZE
 *       [::]:PORT (dual-stack). Answers every request (a request line and
 *       headers up to the blank line; no request body is expected) with
 *       200 and a SIZE-byte body (SIZE <= 4096), keep-alive, pipelining
 *       answered in order.
 *   httpload rate HOST PORT CONNS RATE SECS
 *       CONNS keep-alive connections; sends GET / at RATE requests per
 *       second in total for SECS seconds, each on an idle connection. A
 *       request's latency runs from the time it was due (not from when a
 *       connection was free to send it), so a stall is not hidden. Prints
 *       "reqs N secs S rate R/s errors E p50_us X p99_us Y".
 *   httpload hold HOST PORT N [CONC]
 *       Opens N connections, one request and its whole answer on each (so
 *       every proxy on the path has set up its state), at most CONC (16)
 *       opening or awaiting their answer at a time, as clients that come
 *       over time; prints "ready N" and keeps them open and idle until
 *       SIGTERM/SIGINT. CONC N: every first request at once.
 * Exit status: 0, 1 on a setup or request error, 2 on usage.
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/tools/loadtool.h"

#define MAX_EVENTS 256
#define MAX_SAMPLES (4u << 20)
#define RBUF 8192

/* ---- server ---- */

struct sconn {
	int fd;
	size_t len; /* bytes of an unfinished request kept in buf */
	char buf[RBUF];
};

static char resp[4096 + 256];
static size_t resp_len;

/* Answers every complete request in c->buf; -1 closes the connection. */
static int sconn_serve(struct sconn *c)
{
	char *p = c->buf, *end;
	size_t left = c->len;

	while ((end = memmem(p, left, "\r\n\r\n", 4))) {
		size_t n = (size_t)(end + 4 - p);

		/* small answers: a blocking-style full write is what a simple
		 * app does; the socket buffer takes it whole */
		if (write(c->fd, resp, resp_len) != (ssize_t)resp_len)
			return -1;
		p += n;
		left -= n;
	}
	if (left == sizeof(c->buf))
		return -1; /* headers larger than the buffer: not ours */
	memmove(c->buf, p, left);
	c->len = left;
	return 0;
}

static int run_serve(int port, long size)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port) };
	struct epoll_event evs[MAX_EVENTS];
	int lfd, ep, one = 1, zero = 0;
	size_t hl;

	hl = (size_t)snprintf(resp, sizeof(resp),
			      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %ld\r\n\r\n", size);
	memset(resp + hl, 'x', (size_t)size);
	resp_len = hl + (size_t)size;
	lfd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ep = epoll_create1(0);
	if (lfd < 0 || ep < 0)
		return perror("socket"), 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096))
		return perror("bind"), 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL });
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct sconn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = malloc(sizeof(*c));
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->len = 0;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = c });
				}
				continue;
			}
			r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r > 0) {
				c->len += (size_t)r;
				if (!sconn_serve(c))
					continue;
			}
			close(c->fd); /* EOF, error or refused request: epoll forgets it */
			free(c);
		}
	}
}

/* ---- clients ---- */

struct cconn {
	int fd;
	bool busy;
	uint64_t due; /* when the request in flight was due (us) */
	size_t len, need; /* bytes read of the answer; its total once known */
	char buf[RBUF];
};

static const char *req_host;
static char req[512];
static size_t req_len;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int cconn_open(struct addrinfo *ai, struct cconn *c, int ep)
{
	int one = 1;

	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
		return -1;
	c->busy = false;
	return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = c });
}

static int cconn_send(struct cconn *c, uint64_t due)
{
	/* the first write may meet a connect still in progress: wait for it */
	for (int tries = 0; tries < 5000; tries++) {
		ssize_t w = write(c->fd, req, req_len);

		if (w == (ssize_t)req_len) {
			c->busy = true;
			c->due = due;
			c->len = c->need = 0;
			return 0;
		}
		if (w >= 0 || (errno != EAGAIN && errno != ENOTCONN))
			return -1;
		usleep(1000);
	}
	return -1;
}

/* 1: the whole answer is in; 0: more to read; -1: error or EOF. */
static int cconn_read(struct cconn *c)
{
	ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	char *end;

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0)
		return -1;
	c->len += (size_t)r;
	if (!c->need && (end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
		const char *p = c->buf;
		long cl = -1;

		if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 200", 12))
			return -1;
		while ((p = memchr(p, '\n', (size_t)(end - p))) && p < end) {
			p++;
			if (!strncasecmp(p, "content-length:", 15))
				cl = strtol(p + 15, NULL, 10);
		}
		if (cl < 0 || (size_t)cl > sizeof(c->buf) / 2)
			return -1;
		c->need = (size_t)(end + 4 - c->buf) + (size_t)cl;
	}
	if (c->need && c->len > c->need)
		return -1; /* more than was asked for */
	return c->need && c->len == c->need;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int run_rate(struct addrinfo *ai, int nconn, double rate, double secs)
{
	struct cconn *cs = calloc((size_t)nconn, sizeof(*cs));
	uint64_t *lat = malloc(MAX_SAMPLES * sizeof(*lat));
	struct epoll_event evs[MAX_EVENTS];
	uint64_t t0, end, sent = 0, done = 0, errors = 0;
	int ep = epoll_create1(0);

	if (!cs || !lat || ep < 0)
		return perror("setup"), 1;
	for (int i = 0; i < nconn; i++)
		if (cconn_open(ai, &cs[i], ep))
			return perror("connect"), 1;
	t0 = now_us();
	end = t0 + (uint64_t)(secs * 1e6);
	while (!stop) {
		uint64_t now = now_us(), due = t0 + (uint64_t)((double)sent * 1e6 / rate);
		int wait_ms = 1, n;

		if (now >= end && done + errors == sent)
			break;
		if (now >= end + 5000000)
			break; /* answers still missing 5 s after the end: errors */
		/* every request that is due goes out on an idle connection */
		for (int i = 0; i < nconn && now < end && due <= now; i++) {
			if (cs[i].busy)
				continue;
			if (cconn_send(&cs[i], due)) {
				errors++;
				continue;
			}
			sent++;
			due = t0 + (uint64_t)((double)sent * 1e6 / rate);
		}
		if (due > now)
			wait_ms = (int)((due - now) / 1000);
		n = epoll_wait(ep, evs, MAX_EVENTS, wait_ms);
		for (int i = 0; i < n; i++) {
			struct cconn *c = evs[i].data.ptr;
			int r = cconn_read(c);

			if (r == 0)
				continue;
			if (r > 0 && c->busy) {
				if (done < MAX_SAMPLES)
					lat[done] = now_us() - c->due;
				done++;
				c->busy = false;
				continue;
			}
			errors++;
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			close(c->fd);
			if (c->busy)
				sent--; /* counted in errors, not awaited */
			if (cconn_open(ai, c, ep))
				return perror("reconnect"), 1;
		}
	}
	{
		uint64_t n = done < MAX_SAMPLES ? done : MAX_SAMPLES;
		double el = (double)(now_us() - t0) / 1e6;

		qsort(lat, n, sizeof(*lat), cmp_u64);
		errors += sent - done; /* never answered */
		printf("reqs %llu secs %.2f rate %.0f/s errors %llu p50_us %llu p99_us %llu\n",
		       (unsigned long long)done, el, (double)done / (secs < el ? secs : el),
		       (unsigned long long)errors,
		       (unsigned long long)(n ? lat[n / 2] : 0), (unsigned long long)(n ? lat[n * 99 / 100] : 0));
	}
	return 0;
}

static int run_hold(struct addrinfo *ai, int n, int conc)
{
	struct cconn *cs = calloc((size_t)n, sizeof(*cs));
	struct epoll_event evs[MAX_EVENTS];
	int ep = epoll_create1(0), done = 0, next = 0;
	uint64_t deadline = now_us() + 60000000;

	if (!cs || ep < 0)
		return perror("setup"), 1;
	while (done < n && !stop && now_us() < deadline) {
		int k;

		/* at most conc connections opening or awaiting their answer */
		for (; next < n && next - done < conc; next++)
			if (cconn_open(ai, &cs[next], ep) || cconn_send(&cs[next], now_us()))
				return fprintf(stderr, "connection %d: %s\n", next, strerror(errno)), 1;
		k = epoll_wait(ep, evs, MAX_EVENTS, 1000);
		for (int i = 0; i < k; i++) {
			struct cconn *c = evs[i].data.ptr;
			int r = cconn_read(c);

			if (r < 0)
				return fprintf(stderr, "a connection failed before its answer\n"), 1;
			if (r > 0 && c->busy) {
				c->busy = false;
				done++;
			}
		}
	}
	if (done < n)
		return fprintf(stderr, "%d of %d answers\n", done, n), 1;
	printf("ready %d\n", n);
	fflush(stdout);
	while (!stop)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	bool serve = argc == 4 && !strcmp(argv[1], "serve");
	bool rate = argc == 7 && !strcmp(argv[1], "rate");
	bool hold = (argc == 5 || argc == 6) && !strcmp(argv[1], "hold");

	if (!serve && !rate && !hold) {
		fprintf(stderr, "usage: httpload serve PORT SIZE\n"
				"       httpload rate HOST PORT CONNS RATE SECS\n"
				"       httpload hold HOST PORT N [CONC]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	if (serve) {
		long size = strtol(argv[3], NULL, 10);

		if (size < 0 || size > 4096)
			return fprintf(stderr, "SIZE: 0 to 4096\n"), 2;
		return run_serve(atoi(argv[2]), size);
	}
	if (getaddrinfo(argv[2], argv[3], &hints, &ai))
		return fprintf(stderr, "cannot resolve %s\n", argv[2]), 1;
	req_host = argv[2];
	req_len = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: httpload\r\n\r\n", req_host);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (rate) {
		int n = atoi(argv[4]);
		double r = atof(argv[5]), s = atof(argv[6]);

		if (n < 1 || r <= 0 || s <= 0)
			return fprintf(stderr, "CONNS, RATE, SECS: positive\n"), 2;
		return run_rate(ai, n, r, s);
	}
	if (atoi(argv[4]) < 1 || (argc == 6 && atoi(argv[5]) < 1))
		return fprintf(stderr, "N, CONC: positive\n"), 2;
	return run_hold(ai, atoi(argv[4]), argc == 6 ? atoi(argv[5]) : 16);
}
