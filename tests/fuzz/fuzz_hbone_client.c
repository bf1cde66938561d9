/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as a hostile HBONE server's answers
 * (the decrypted HTTP/2 byte stream) to a client connection (tunnel/hbone.h
 * memory transport: no socket, no TLS, output counted and dropped) that
 * has three CONNECT streams open, each relaying an app's socketpair.
 * Exercises the server preface and SETTINGS, response HEADERS (:status,
 * bad or missing pseudo-headers, trailers), DATA into the app, flow
 * control, RST_STREAM, GOAWAY, PUSH_PROMISE and PINGs. The input is fed in
 * two pieces to cover frames split across reads. Checks that every
 * stream's done callback runs exactly once with a sane status; must never
 * crash, leak or trip a sanitizer.
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tunnel/hbone.h"
#include "tunnel/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STREAMS 3

static int done[STREAMS];

static void on_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	int *d = ctx;

	(void)s;
	if (++*d != 1 || st->status < 0 || st->status > 999 || !memchr(st->reason, 0, sizeof(st->reason)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct loop *l;
	static const char *const auth[STREAMS] = { "10.0.0.2:8080", "[fd00::2]:80", "10.0.0.3:9" };
	int peers[STREAMS], opened[STREAMS] = { 0 };
	struct hbone_conn *c = NULL;
	struct hbone_opts o;
	size_t half = size / 2;

	if (!l) {
		signal(SIGPIPE, SIG_IGN);
		l = loop_new();
		if (!l)
			return 0;
	}
	hbone_opts_default(&o, false);
	o.stream_window = 65535;
	o.send_buf = 4096;
	if (hbone_client_new_mem(l, &o, "spiffe://cluster.local/ns/fuzz/sa/server", &c))
		return 0;
	for (int i = 0; i < STREAMS; i++) {
		struct hbone_connect_req req = { .authority = auth[i], .forwarded = "for=\"10.0.0.1:1234\"" };
		int sp[2];

		peers[i] = -1;
		done[i] = 0;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp))
			continue;
		peers[i] = sp[1];
		if (i == 1) /* the app has something to send */
			(void)!write(sp[1], "GET / HTTP/1.1\r\n\r\n", 18);
		/* on failure sp[0] is closed and done does not run */
		opened[i] = !hbone_stream_open(c, &req, sp[0], on_done, &done[i], NULL);
	}
	if (!hbone_conn_mem_feed(c, data, half))
		hbone_conn_mem_feed(c, data + half, size - half);
	hbone_conn_abort(c, "fuzz input done");
	for (int i = 0; i < STREAMS; i++) {
		if (done[i] != opened[i]) /* every opened stream ended, once */
			abort();
		if (peers[i] >= 0)
			close(peers[i]);
	}
	return 0;
}
