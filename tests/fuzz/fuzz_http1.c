/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the waypoint's HTTP/1.1 parser (waypoint/http1.c),
 * which reads what any client of a waypoint sends. The input is a byte
 * stream on one connection: heads are parsed one after another (as
 * pipelined requests are), each one's body skipped by its framing
 * (Content-Length, or chunked fed in pieces of a size taken from the
 * input). Checks the contract: a complete head is at most H1_HEAD_MAX,
 * every string points inside it, one byte short is never complete, a
 * refusal carries a reason and a 4xx/5xx, the chunked decoder consumes
 * within bounds and never counts more data than it consumed; a head never
 * has both framings. The input is also parsed as a response head (the
 * application's answer), and sniffed (waypoint/proto.h) prefix by prefix:
 * once a prefix is decided, every longer one gets the same answer, and
 * HTTP only for bytes the HTTP/1 parser would not call TCP. Aborts on a broken invariant; ASan/UBSan catch
 * memory errors.
 */
#include "waypoint/http1.h"
#include "waypoint/proto.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(struct h1_str s, const char *buf, size_t len)
{
	/* the one exception: an absolute form without a path has path "/" */
	if (s.n == 1 && s.p[0] == '/')
		return;
	if (s.p && (s.p < buf || s.p + s.n > buf + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct h1_request req, prefix;
	const char *buf = (const char *)data;
	size_t pos = 0, step;

	if (!size)
		return 0;
	step = 1 + data[0] % 17; /* chunked feeding granularity */
	{
		enum wp_proto first = WP_PROTO_SNIFF;

		for (size_t k = 0; k <= size && k <= 64; k++) {
			enum wp_proto p = wp_sniff(buf, k);

			if (first != WP_PROTO_SNIFF && p != first)
				abort(); /* a decision never changes with more bytes */
			if (p != WP_PROTO_SNIFF)
				first = p;
			if (p == WP_PROTO_HTTP && !(buf[0] >= 'A' && buf[0] <= 'Z'))
				abort(); /* a method (or PRI) starts every HTTP stream */
		}
	}
	{
		/* the same bytes as an application's response head */
		struct h1_response rs;
		int r = h1_parse_response_head(buf + 1, size - 1, data[0] & 1, &rs);

		if (r < 0 && (!rs.error || !*rs.error))
			abort();
		if (r > 0 && ((size_t)r > size - 1 || rs.status < 100 || rs.status > 599 ||
			      (rs.body == H1_BODY_LENGTH && !rs.content_length)))
			abort();
	}
	pos = 1;
	for (int n_req = 0; pos < size && n_req < 64; n_req++) {
		const char *b = buf + pos;
		size_t len = size - pos;
		int r = h1_parse_head(b, len, &req);

		if (r < 0) {
			unsigned st = h1_error_status(r);

			if (!req.error || !*req.error || st < 400 || st > 505)
				abort();
			return 0;
		}
		if (r == 0) {
			if (len >= H1_HEAD_MAX)
				abort(); /* a head that can never complete must be refused */
			return 0;
		}
		if ((size_t)r > len || r > H1_HEAD_MAX || !req.method.n || !req.path.n || !req.authority.n)
			abort();
		inside(req.method, b, (size_t)r);
		inside(req.target, b, (size_t)r);
		inside(req.path, b, (size_t)r);
		inside(req.query, b, (size_t)r);
		inside(req.authority, b, (size_t)r);
		for (size_t i = 0; i < req.n_fields; i++) {
			inside(req.fields[i].name, b, (size_t)r);
			inside(req.fields[i].value, b, (size_t)r);
		}
		if (h1_field(&req, "transfer-encoding", NULL) && h1_field(&req, "content-length", NULL))
			abort();
		if (h1_parse_head(b, (size_t)r - 1, &prefix) > 0)
			abort();
		pos += (size_t)r;
		if (req.body == H1_BODY_LENGTH) {
			if (req.content_length > size - pos)
				return 0;
			pos += req.content_length;
		} else if (req.body == H1_BODY_CHUNKED) {
			struct h1_chunked c;

			h1_chunked_init(&c);
			while (pos < size && !c.done) {
				size_t n = size - pos < step ? size - pos : step, d;
				long k = h1_chunked_step(&c, buf + pos, n, &d);

				if (k < 0) {
					if (!c.error)
						abort();
					return 0;
				}
				if ((size_t)k > n || d > (size_t)k || (!c.done && (size_t)k != n))
					abort();
				pos += (size_t)k;
			}
			if (!c.done)
				return 0;
		}
	}
	return 0;
}
