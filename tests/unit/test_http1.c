/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the waypoint's HTTP/1.1 parser (waypoint/http1.c): a table
 * of request-smuggling and malformed shapes that must be refused with the
 * right status, well-formed requests (keep-alive, pipelining, chunked,
 * absolute form, upgrade), byte-at-a-time parsing, chunked bodies.
 */
#include <errno.h>
#include <string.h>

#include "waypoint/http1.h"
#include "tests/unit/t.h"

/* Each must be refused: status, and a word of the reason. */
static const struct {
	const char *name, *req;
	unsigned status;
	const char *why;
} refused[] = {
	{ "CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
	  "both Content-Length and Transfer-Encoding" },
	{ "TE.CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n", 400,
	  "both" },
	{ "CL.CL differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nContent-Length: 7\r\n\r\n", 400,
	  "differing" },
	{ "CL list differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6, 7\r\n\r\n", 400, "differing" },
	{ "CL sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +6\r\n\r\n", 400, "decimal" },
	{ "CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "decimal" },
	{ "CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400, "decimal" },
	{ "CL space inside", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", 400, "decimal" },
	{ "CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400, "empty" },
	{ "CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400,
	  "too large" },
	{ "TE space before colon", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400,
	  "whitespace between" },
	{ "TE obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 400,
	  "folding" },
	{ "TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400,
	  "does not end in chunked" },
	{ "TE chunked then identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
	  400, "does not end in chunked" },
	{ "TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	  400, "more than once" },
	{ "TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
	  "other than chunked" },
	{ "TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0" },
	{ "TE vertical tab", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0b" "chunked\r\n\r\n", 400,
	  "control" },
	{ "TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400, "empty" },
	{ "bare LF head", "GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF" },
	{ "bare LF in a field", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400, "bare LF" },
	{ "bare CR in a field", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, "bare CR" },
	{ "NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, "control" },
	{ "space in a name", "GET / HTTP/1.1\r\nHost: a\r\nX Y: z\r\n\r\n", 400, "whitespace" },
	{ "empty name", "GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n", 400, "empty name" },
	{ "non-token name", "GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", 400, "token" },
	{ "obs-fold ordinary", "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tz\r\n\r\n", 400, "folding" },
	{ "no Host", "GET / HTTP/1.1\r\n\r\n", 400, "without Host" },
	{ "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host" },
	{ "Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "host[:port]" },
	{ "Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "host[:port]" },
	{ "target with space", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "version" },
	{ "target with DEL", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "VCHAR" },
	{ "two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "VCHAR" },
	{ "tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method" },
	{ "lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "version" },
	{ "HTTP/2 version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/1.x" },
	{ "HTTP/0.9 style", "GET /\r\n\r\n", 400, "VCHAR" },
	{ "relative target", "GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "origin form" },
	{ "fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment" },
	{ "star not OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "OPTIONS" },
	{ "CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405, "CONNECT" },
	{ "absolute with userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "authority" },
	{ "empty request line", "\r\n\r\n\r\n\r\n\r\n\r\n", 400, "empty lines" },
};

static void test_refused_shapes(void)
{
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct h1_request r;
		size_t len = strlen(refused[i].req);
		int ret;

		if (!strcmp(refused[i].name, "NUL in a value"))
			len = sizeof("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n") - 1;
		ret = h1_parse_head(refused[i].req, len, &r);
		printf("# %-24s -> %d %s\n", refused[i].name, ret < 0 ? (int)h1_error_status(ret) : ret,
		       ret < 0 ? r.error : "(accepted)");
		T_ASSERT(ret < 0);
		T_ASSERT_INT(h1_error_status(ret), refused[i].status);
		T_ASSERT(strstr(r.error, refused[i].why));
	}
}

#define HEAD_OK(lit) (h1_parse_head(lit, sizeof(lit) - 1, &r) == (int)sizeof(lit) - 1)

static void test_well_formed(void)
{
	static const char pipelined[] = "GET /a?x=1 HTTP/1.1\r\nHost: svc.ns:80\r\nX-Thing:  v  \r\n\r\n"
					"POST /b HTTP/1.1\r\nHost: svc.ns\r\nContent-Length: 5, 5\r\n"
					"Connection: close\r\n\r\nhello";
	struct h1_request r;
	int n = h1_parse_head(pipelined, sizeof(pipelined) - 1, &r), m;
	const struct h1_field *f;

	T_ASSERT(n > 0);
	T_ASSERT(h1_str_ieq(r.method, "GET"));
	T_ASSERT(h1_str_ieq(r.path, "/a"));
	T_ASSERT(h1_str_ieq(r.query, "x=1"));
	T_ASSERT(h1_str_ieq(r.authority, "svc.ns:80"));
	T_ASSERT(r.keep_alive && r.body == H1_BODY_NONE && r.minor == 1);
	f = h1_field(&r, "x-thing", NULL);
	T_ASSERT(f && h1_str_ieq(f->value, "v"));
	m = h1_parse_head(pipelined + n, sizeof(pipelined) - 1 - (size_t)n, &r);
	T_ASSERT(m > 0);
	T_ASSERT(r.body == H1_BODY_LENGTH && r.content_length == 5 && !r.keep_alive);
	T_ASSERT_INT(sizeof(pipelined) - 1 - (size_t)n - (size_t)m, 5);

	T_ASSERT(HEAD_OK("\r\nGET http://Web:8080 HTTP/1.1\r\nHost: x\r\n\r\n"));
	T_ASSERT(h1_str_ieq(r.authority, "Web:8080") && h1_str_ieq(r.path, "/"));
	T_ASSERT(HEAD_OK("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n"));
	T_ASSERT(r.keep_alive && r.minor == 0);
	T_ASSERT(HEAD_OK("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
			       "Expect: 100-continue\r\n\r\n"));
	T_ASSERT(r.upgrade && r.expect_continue);
	T_ASSERT(HEAD_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"));
	T_ASSERT(r.body == H1_BODY_CHUNKED);
	T_ASSERT(HEAD_OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"));
}

/* A head is incomplete (0) at every shorter prefix, then complete. */
static void test_byte_at_a_time(void)
{
	static const char req[] = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
	struct h1_request r;

	for (size_t i = 0; i < sizeof(req) - 1; i++)
		T_ASSERT_INT(h1_parse_head(req, i, &r), 0);
	T_ASSERT_INT(h1_parse_head(req, sizeof(req) - 1, &r), sizeof(req) - 1);
}

static void test_limits(void)
{
	static char big[H1_HEAD_MAX + 64];
	struct h1_request r;
	size_t n;

	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	T_ASSERT_INT(h1_parse_head(big, sizeof(big), &r), -E2BIG);
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < H1_HEADERS_MAX; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-%d: y\r\n", i);
	n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
	T_ASSERT_INT(h1_parse_head(big, n, &r), -E2BIG);
	T_ASSERT_INT(h1_error_status(-E2BIG), 431);
}

static long feed(const char *body, size_t len, size_t step, size_t *data, struct h1_chunked *c)
{
	size_t pos = 0, d;

	h1_chunked_init(c);
	*data = 0;
	while (pos < len && !c->done) {
		size_t n = len - pos < step ? len - pos : step;
		long r = h1_chunked_step(c, body + pos, n, &d);

		if (r < 0)
			return r;
		pos += (size_t)r;
		*data += d;
	}
	return (long)pos;
}

static void test_chunked(void)
{
	static const char ok[] = "5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
				 "grpc-status: 0\r\n\r\nGET /next";
	static const struct {
		const char *body, *why;
	} bad[] = {
		{ "5\r\nhello!\r\n0\r\n\r\n", "longer than its chunk-size" },
		{ "5\nhello\r\n0\r\n\r\n", "no extension" },
		{ "5\r\nhello\n0\r\n\r\n", "longer" },
		{ "x\r\n", "not a hex number" },
		{ "-5\r\n", "not a hex number" },
		{ "0x5\r\n", "no extension" },
		{ "ffffffffffffffff0\r\n", "too many digits" },
		{ "0\r\n bad: fold\r\n\r\n", "folding" },
		{ "0\r\nbad header\r\n\r\n", "token" },
		{ "0\r\nx: a\0b\r\n\r\n", "control" },
		{ "5;\x01\r\nhello\r\n", "control" },
		{ "0\r\n\r\r", "bare CR" },
	};
	struct h1_chunked c;
	size_t data;

	for (size_t step = 1; step <= sizeof(ok); step += 7) {
		long n = feed(ok, sizeof(ok) - 1, step, &data, &c);

		T_ASSERT(c.done);
		T_ASSERT_INT(n, sizeof(ok) - 1 - strlen("GET /next"));
		T_ASSERT_INT(data, 5 + 26);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = strlen(bad[i].body);

		if (strstr(bad[i].why, "control") && bad[i].body[0] == '0')
			len = 14;
		T_ASSERT_INT(feed(bad[i].body, len, 1, &data, &c), -EBADMSG);
		printf("# %s -> %s\n", bad[i].body[0] ? "chunked" : "", c.error);
		T_ASSERT(strstr(c.error, bad[i].why));
	}
}

static void test_response(void)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	static const char close_delim[] = "HTTP/1.0 200 OK\r\n\r\nbody until close";
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 5\n\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/2 200\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX:\r\n y\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	};
	struct h1_response rs;

	T_ASSERT_INT(h1_parse_response_head(ok, sizeof(ok) - 1, false, &rs), sizeof(ok) - 1 - 5);
	T_ASSERT(rs.status == 200 && rs.body == H1_BODY_LENGTH && rs.content_length == 5 && rs.keep_alive);
	T_ASSERT(h1_parse_response_head(ok, sizeof(ok) - 1, true, &rs) > 0 && rs.body == H1_BODY_NONE);
	T_ASSERT(h1_parse_response_head(chunked, sizeof(chunked) - 1, false, &rs) > 0 && rs.body == H1_BODY_CHUNKED);
	T_ASSERT(h1_parse_response_head(close_delim, sizeof(close_delim) - 1, false, &rs) > 0);
	T_ASSERT(rs.until_close && !rs.keep_alive);
	T_ASSERT(h1_parse_response_head(cont, sizeof(cont) - 1, false, &rs) > 0 && rs.status == 100);
	T_ASSERT_INT(h1_parse_response_head(ok, 20, false, &rs), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		T_ASSERT(h1_parse_response_head(bad[i], strlen(bad[i]), false, &rs) < 0);
		printf("# response %zu -> %s\n", i, rs.error);
	}
}

T_MAIN(T_CASE(test_response), T_CASE(test_refused_shapes), T_CASE(test_well_formed), T_CASE(test_byte_at_a_time),
       T_CASE(test_limits), T_CASE(test_chunked))
