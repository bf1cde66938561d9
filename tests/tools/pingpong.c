/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pingpong: request/response latency at a fixed rate, with a client that
 * sleeps between messages (tests/bench/run.sh). sockperf paces its sends
 * by spinning, which keeps one CPU busy for the whole run; on a two-core
 * machine that leaves one core for every other hop of the path, so its
 * figure measures the scheduler as much as the path. Applications block
 * on their sockets; so does this client.
 *
 *   pingpong HOST PORT RATE SECS SIZE
 *       One TCP connection to an echo server (connrate server PORT 0).
 *       Every 1/RATE s (absolute clock_nanosleep ticks) sends SIZE bytes
 *       and reads SIZE bytes back with blocking calls. Prints one line:
 *       "msgs N p50_us X p99_us Y p999_us Z max_us W" (half the round
 *       trip, as sockperf).
 * Exit status: 0, 1 on a setup or I/O error, 2 on usage.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int fd = -1, one = 1, ret;

	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret) {
		fprintf(stderr, "pingpong: %s:%s: %s\n", host, port, gai_strerror(ret));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		fprintf(stderr, "pingpong: connect %s:%s: %s\n", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	} else {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	freeaddrinfo(ai);
	return fd;
}

/* Reads exactly len bytes (blocking). 0, or -1 on error/EOF. */
static int read_full(int fd, char *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[MAX_SIZE];
	uint64_t *rtt = NULL, period, next, n = 0, max;
	struct timespec tick;
	long rate, secs, size;
	int fd, status = 1;

	if (argc != 6)
		goto usage;
	rate = strtol(argv[3], NULL, 10);
	secs = strtol(argv[4], NULL, 10);
	size = strtol(argv[5], NULL, 10);
	if (rate <= 0 || rate > 1000000 || secs <= 0 || size <= 0 || size > MAX_SIZE)
		goto usage;
	max = (uint64_t)rate * (uint64_t)secs;
	rtt = calloc(max, sizeof(*rtt));
	if (!rtt)
		goto out;
	fd = dial(argv[1], argv[2]);
	if (fd < 0)
		goto out;
	memset(buf, 'p', sizeof(buf));
	period = 1000000000u / (uint64_t)rate;
	next = now_ns() + period;
	for (; n < max; n++, next += period) {
		uint64_t t0;

		tick = (struct timespec){ .tv_sec = (time_t)(next / 1000000000u),
					  .tv_nsec = (long)(next % 1000000000u) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL) == EINTR)
			;
		t0 = now_ns();
		errno = 0; /* a closed connection sets none */
		if (send(fd, buf, (size_t)size, MSG_NOSIGNAL) != size || read_full(fd, buf, (size_t)size) < 0) {
			fprintf(stderr, "pingpong: message %llu: %s\n", (unsigned long long)n,
				errno ? strerror(errno) : "connection closed");
			goto close;
		}
		rtt[n] = now_ns() - t0;
	}
	qsort(rtt, n, sizeof(*rtt), cmp_u64);
	/* Nearest rank; half the round trip, in microseconds. */
	printf("msgs %llu p50_us %.1f p99_us %.1f p999_us %.1f max_us %.1f\n",
	       (unsigned long long)n, rtt[(n * 50 + 99) / 100 - 1] / 2000.0,
	       rtt[(n * 99 + 99) / 100 - 1] / 2000.0, rtt[(n * 999 + 999) / 1000 - 1] / 2000.0,
	       rtt[n - 1] / 2000.0);
	status = 0;
close:
	close(fd);
out:
	free(rtt);
	return status;
usage:
	fprintf(stderr, "usage: pingpong HOST PORT RATE SECS SIZE\n");
	return 2;
}
