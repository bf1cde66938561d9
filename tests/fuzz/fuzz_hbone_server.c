/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as the decrypted HTTP/2 byte stream of
 * an HBONE server connection (tunnel/hbone.h memory transport: no socket,
 * no TLS, output counted and dropped). Exercises the client preface,
 * SETTINGS, CONNECT header handling (method, :authority parsing, nghttp2's
 * pseudo-header validation), DATA into the relay rings and RST/GOAWAY.
 * Each valid request is accepted (relayed to a socketpair), rejected with
 * 401 or 503, or left pending, chosen by the authority's length so the
 * choice is part of the input. The input is fed in two pieces to cover
 * frames split across reads. Must never crash, leak or trip a sanitizer.
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tunnel/hbone.h"
#include "tunnel/loop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PEERS 64

static int peers[MAX_PEERS];
static size_t npeers;

static void on_request(void *ctx, struct hbone_stream *s, const struct hbone_request *req)
{
	int sp[2];

	switch (strlen(req->authority) % 4) {
	case 0:
		if (npeers < MAX_PEERS &&
		    !socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp)) {
			peers[npeers++] = sp[1];
			hbone_stream_accept(s, sp[0]);
		} else {
			hbone_stream_reject(s, 503);
		}
		break;
	case 1:
		hbone_stream_reject(s, 401);
		break;
	case 2:
		hbone_stream_reject(s, 503);
		break;
	default:
		break; /* pending until the stream or the connection ends */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct loop *l;
	struct hbone_server_cbs cbs = { .on_request = on_request };
	struct hbone_opts o;
	struct hbone_conn *c = NULL;
	size_t half = size / 2;

	if (!l) {
		signal(SIGPIPE, SIG_IGN);
		l = loop_new();
		if (!l)
			return 0;
	}
	hbone_opts_default(&o, true);
	/* Small rings keep each run cheap; the logic is the same. */
	o.stream_window = 65535;
	o.send_buf = 4096;
	if (hbone_server_new_mem(l, &o, &cbs, "spiffe://cluster.local/ns/fuzz/sa/client", &c))
		return 0;
	if (!hbone_conn_mem_feed(c, data, half))
		hbone_conn_mem_feed(c, data + half, size - half);
	hbone_conn_abort(c, "fuzz input done");
	for (size_t i = 0; i < npeers; i++)
		close(peers[i]);
	npeers = 0;
	return 0;
}
