/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of tunnel/http.c: the request head parser (complete, partial
 * and malformed heads, bare LF, size limits, Content-Length,
 * Transfer-Encoding, HTTP/1.0 and 1.1 connection persistence), the query
 * argument decoder, and the server on a real loop with a forked client over
 * a Unix socket (keep-alive, HEAD, pipelining, a large response to a slow
 * reader, request bodies, errors and close). TAP via tests/unit/t.h.
 */
#include "tunnel/http.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/t.h"
#include "tunnel/loop.h"

static int parse(const char *s, struct http_request *req)
{
	return http_parse_request(s, strlen(s), req);
}

static int streq_n(const char *p, size_t n, const char *want)
{
	return p && strlen(want) == n && !memcmp(p, want, n);
}

static void test_complete_get(void)
{
	const char *s = "GET /logging?level=debug HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\nTRAILING";
	struct http_request r;

	T_ASSERT_INT(parse(s, &r), strlen(s) - strlen("TRAILING"));
	T_ASSERT(streq_n(r.method, r.method_len, "GET"));
	T_ASSERT(streq_n(r.path, r.path_len, "/logging"));
	T_ASSERT(streq_n(r.query, r.query_len, "level=debug"));
	T_ASSERT_INT(r.minor, 1);
	T_ASSERT(r.keep_alive);
	T_ASSERT_INT(r.content_length, 0);
	T_ASSERT(!r.expect_continue);
	T_ASSERT(r.error == NULL);

	T_ASSERT(parse("GET /pods HTTP/1.1\r\nHost: x\r\n\r\n", &r) > 0);
	T_ASSERT(r.query == NULL);
	T_ASSERT(parse("GET /pods? HTTP/1.1\r\nHost: x\r\n\r\n", &r) > 0);
	T_ASSERT(r.query != NULL && r.query_len == 0);
}

static void test_partial_heads(void)
{
	const char *s = "POST /logging?level=info HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n";
	size_t n = strlen(s);
	struct http_request r;

	for (size_t i = 0; i < n; i++)
		T_ASSERT_INT(http_parse_request(s, i, &r), 0);
	T_ASSERT_INT(http_parse_request(s, n, &r), n);
	T_ASSERT_INT(r.content_length, 3);
	T_ASSERT_INT(http_parse_request("", 0, &r), 0);
	T_ASSERT_INT(parse("\r", &r), 0);
}

static void test_bare_lf(void)
{
	const char *s = "GET /x HTTP/1.1\nHost: x\nConnection: close\n\n";
	struct http_request r;

	T_ASSERT_INT(parse(s, &r), strlen(s));
	T_ASSERT(!r.keep_alive);
	/* mixed endings, and empty lines before the request line are skipped */
	s = "\r\n\nGET /y HTTP/1.0\r\nHost: x\n\r\n";
	T_ASSERT_INT(parse(s, &r), strlen(s));
	T_ASSERT(streq_n(r.path, r.path_len, "/y"));
}

static void test_malformed(void)
{
	static const char *const bad[] = {
		"GET\r\n\r\n",
		"GET /x\r\n\r\n",				/* HTTP/0.9 */
		"GET  /x HTTP/1.1\r\nHost: x\r\n\r\n",		/* two spaces */
		"GET /x  HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET x HTTP/1.1\r\nHost: x\r\n\r\n",		/* not an absolute path */
		"GET http://h/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"G(T /x HTTP/1.1\r\nHost: x\r\n\r\n",		/* method not a token */
		" GET /x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /x HTTP/1.1 \r\nHost: x\r\n\r\n",
		"GET /x http/1.1\r\nHost: x\r\n\r\n",
		"GET /x HTTP/1.10\r\nHost: x\r\n\r\n",
		"GET /x HTTP/1\r\nHost: x\r\n\r\n",
		"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /x HTTP/1.1\rHost: x\r\n\r\n",		/* bare CR */
		"GET /x HTTP/1.1\r\nHost: x\r\r\n\r\n",
		"\rGET /x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nName : v\r\n\r\n",	/* space before ':' */
		"GET /x HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nA: b\r\n c\r\n\r\n",	/* obs-fold */
		"GET /x HTTP/1.1\r\nHost: x\r\nA: b\x01\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nA: b\x7f\r\n\r\n",
		"GET /x HTTP/1.1\r\n\r\n",			/* 1.1 without Host */
		"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /x HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
	};
	struct http_request r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse(bad[i], &r);

		if (ret != -EBADMSG)
			printf("#   case %zu: %d\n", i, ret);
		T_ASSERT_INT(ret, -EBADMSG);
		T_ASSERT(r.error && *r.error);
		T_ASSERT_INT(http_error_status(ret), 400);
	}
	/* a NUL is a control byte too */
	T_ASSERT_INT(http_parse_request("GET /x HTTP/1.1\r\nHost: \0\r\n\r\n", 28, &r), -EBADMSG);
	/* bad lines are refused before the head is complete */
	T_ASSERT_INT(parse("GET /x HTTP/1.1\r\nBad line\r\n", &r), -EBADMSG);
	T_ASSERT_INT(parse("GARBAGE\r\n", &r), -EBADMSG);
	/* obs-text in values is allowed */
	T_ASSERT(parse("GET /x HTTP/1.1\r\nHost: x\r\nA: caf\xc3\xa9\t \r\n\r\n", &r) > 0);
}

static void test_head_limit(void)
{
	char *buf = malloc(HTTP_HEAD_MAX + 100);
	const char *pre = "GET /x HTTP/1.1\r\nHost: x\r\nA: ";
	struct http_request r;
	size_t pl = strlen(pre), n;

	T_ASSERT(buf);
	memcpy(buf, pre, pl);
	/* exactly HTTP_HEAD_MAX bytes, ending in the empty line: accepted */
	n = HTTP_HEAD_MAX - pl - 4;
	memset(buf + pl, 'a', n);
	memcpy(buf + pl + n, "\r\n\r\n", 4);
	T_ASSERT_INT(http_parse_request(buf, HTTP_HEAD_MAX, &r), HTTP_HEAD_MAX);
	/* one byte more: too large, even when the rest arrives */
	memset(buf + pl, 'a', n + 1);
	memcpy(buf + pl + n + 1, "\r\n\r\n", 4);
	T_ASSERT_INT(http_parse_request(buf, HTTP_HEAD_MAX - 1, &r), 0);
	T_ASSERT_INT(http_parse_request(buf, HTTP_HEAD_MAX, &r), -E2BIG);
	T_ASSERT_INT(http_parse_request(buf, HTTP_HEAD_MAX + 1, &r), -E2BIG);
	T_ASSERT_INT(http_error_status(-E2BIG), 431);
	T_ASSERT(r.error && strstr(r.error, "too large"));
	free(buf);
}

static void test_too_many_fields(void)
{
	char buf[2048];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "GET /x HTTP/1.1\r\nHost: x\r\n");
	struct http_request r;

	for (int i = 1; i < HTTP_HEADERS_MAX; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "F%d: v\r\n", i);
	T_ASSERT_INT(http_parse_request(buf, n, &r), 0);
	memcpy(buf + n, "\r\n", 2);
	T_ASSERT_INT(http_parse_request(buf, n + 2, &r), n + 2); /* 64 fields */
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "F65: v\r\n\r\n");
	T_ASSERT_INT(http_parse_request(buf, n, &r), -E2BIG);
}

static int cl_parse(const char *cl_lines, struct http_request *r)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "POST /x HTTP/1.1\r\nHost: x\r\n%s\r\n", cl_lines);
	return parse(buf, r);
}

static void test_content_length(void)
{
	static const char *const bad[] = {
		"Content-Length: -1\r\n", "Content-Length: +1\r\n", "Content-Length: abc\r\n",
		"Content-Length: \r\n", "Content-Length: 1 2\r\n", "Content-Length: 0x10\r\n",
		"Content-Length: 5, 6\r\n", "Content-Length: 5,\r\n", "Content-Length: ,5\r\n",
		"Content-Length: 5\r\nContent-Length: 6\r\n", "content-length: 1\r\nCONTENT-LENGTH: 10\r\n",
	};
	struct http_request r;

	T_ASSERT(cl_parse("Content-Length: 10\r\n", &r) > 0);
	T_ASSERT_INT(r.content_length, 10);
	T_ASSERT(cl_parse("Content-Length: 007\r\n", &r) > 0);
	T_ASSERT_INT(r.content_length, 7);
	T_ASSERT(cl_parse("Content-Length: 5\r\ncontent-length:5 \r\n", &r) > 0);
	T_ASSERT_INT(r.content_length, 5);
	T_ASSERT(cl_parse("Content-Length: 5 , 5\r\n", &r) > 0);
	T_ASSERT_INT(r.content_length, 5);
	T_ASSERT(cl_parse("Content-Length: 65536\r\n", &r) > 0);
	T_ASSERT_INT(r.content_length, HTTP_BODY_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		T_ASSERT_INT(cl_parse(bad[i], &r), -EBADMSG);
	T_ASSERT_INT(cl_parse("Content-Length: 65537\r\n", &r), -EFBIG);
	T_ASSERT_INT(cl_parse("Content-Length: 99999999999999999999999999999\r\n", &r), -EFBIG);
	T_ASSERT_INT(cl_parse("Content-Length: 18446744073709551617\r\n", &r), -EFBIG);
	T_ASSERT_INT(http_error_status(-EFBIG), 413);
}

static void test_transfer_encoding(void)
{
	struct http_request r;

	T_ASSERT_INT(cl_parse("Transfer-Encoding: chunked\r\n", &r), -ENOSYS);
	T_ASSERT(r.error && strstr(r.error, "Transfer-Encoding"));
	T_ASSERT_INT(cl_parse("Content-Length: 3\r\ntransfer-encoding: identity\r\n", &r), -ENOSYS);
	T_ASSERT_INT(http_error_status(-ENOSYS), 501);
}

static void test_versions_keep_alive(void)
{
	struct http_request r;

	T_ASSERT(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0);
	T_ASSERT_INT(r.minor, 0);
	T_ASSERT(!r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) > 0);
	T_ASSERT(r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r) > 0);
	T_ASSERT(r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: CLOSE\r\n\r\n", &r) > 0);
	T_ASSERT(!r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", &r) > 0);
	T_ASSERT(!r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", &r) > 0);
	T_ASSERT(!r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n", &r) > 0);
	T_ASSERT(r.keep_alive);
	T_ASSERT(parse("GET / HTTP/1.9\r\nHost: x\r\n\r\n", &r) > 0);
	T_ASSERT_INT(r.minor, 1);
	T_ASSERT_INT(parse("GET / HTTP/2.0\r\n\r\n", &r), -EPROTONOSUPPORT);
	T_ASSERT_INT(parse("GET / HTTP/0.9\r\n\r\n", &r), -EPROTONOSUPPORT);
	T_ASSERT_INT(http_error_status(-EPROTONOSUPPORT), 505);
	T_ASSERT(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nExpect: 100-Continue\r\n\r\n", &r) > 0);
	T_ASSERT(r.expect_continue);
}

static void test_query_arg(void)
{
	const char *q = "a=1&level=de%62ug&x=a+b%2Bc&empty=&flag&enc%20name=v&level=second";
	char out[16];

	T_ASSERT_INT(http_query_arg(q, strlen(q), "level", out, sizeof(out)), 5);
	T_ASSERT_STR(out, "debug");
	T_ASSERT_INT(http_query_arg(q, strlen(q), "a", out, sizeof(out)), 1);
	T_ASSERT_STR(out, "1");
	T_ASSERT_INT(http_query_arg(q, strlen(q), "x", out, sizeof(out)), 5);
	T_ASSERT_STR(out, "a b+c");
	T_ASSERT_INT(http_query_arg(q, strlen(q), "empty", out, sizeof(out)), 0);
	T_ASSERT_STR(out, "");
	T_ASSERT_INT(http_query_arg(q, strlen(q), "flag", out, sizeof(out)), 0);
	T_ASSERT_INT(http_query_arg(q, strlen(q), "enc name", out, sizeof(out)), 1);
	T_ASSERT_STR(out, "v");
	T_ASSERT_INT(http_query_arg(q, strlen(q), "lev", out, sizeof(out)), -ENOENT);
	T_ASSERT_INT(http_query_arg(q, strlen(q), "levelx", out, sizeof(out)), -ENOENT);
	T_ASSERT_INT(http_query_arg(NULL, 0, "level", out, sizeof(out)), -ENOENT);
	T_ASSERT_INT(http_query_arg("", 0, "level", out, sizeof(out)), -ENOENT);
	/* only query_len bytes count */
	T_ASSERT_INT(http_query_arg("level=info&z", 10, "level", out, sizeof(out)), 4);
	T_ASSERT_INT(http_query_arg("level=info", 5, "level", out, sizeof(out)), 0);
	T_ASSERT_INT(http_query_arg("level=%4", 8, "level", out, sizeof(out)), -EBADMSG);
	T_ASSERT_INT(http_query_arg("level=%zz", 9, "level", out, sizeof(out)), -EBADMSG);
	T_ASSERT_INT(http_query_arg("level=a%00b", 11, "level", out, sizeof(out)), -EBADMSG);
	/* a bad key is skipped, not an error */
	T_ASSERT_INT(http_query_arg("%g=1&level=warn", 15, "level", out, sizeof(out)), 4);
	T_ASSERT_INT(http_query_arg("level=0123456789abcdef", 22, "level", out, sizeof(out)), -ENOSPC);
	T_ASSERT_INT(http_query_arg("level=0123456789abcde", 21, "level", out, sizeof(out)), 15);
	T_ASSERT_INT(http_query_arg("level=", 6, "level", out, 0), -ENOSPC);
}

static void test_reasons(void)
{
	T_ASSERT_STR(http_reason(200), "OK");
	T_ASSERT_STR(http_reason(404), "Not Found");
	T_ASSERT_STR(http_reason(431), "Request Header Fields Too Large");
	T_ASSERT_STR(http_reason(299), "Unknown");
	T_ASSERT_INT(http_error_status(-EBADMSG), 400);
}

/* ---- the server, driven by a real loop, with a forked client ---- */

#define BIG_LEN (600 * 1024)

static void srv_handler(void *ctx, const struct http_request *req, struct http_response *resp)
{
	int *count = ctx;

	(*count)++;
	resp->status = 200;
	resp->content_type = "text/plain";
	if (!strcmp(req->path, "/big")) {
		resp->body = malloc(BIG_LEN);
		if (resp->body)
			for (size_t i = 0; i < BIG_LEN; i++)
				resp->body[i] = (char)('a' + i % 26);
		resp->body_len = BIG_LEN;
	} else if (!strcmp(req->path, "/echo")) {
		resp->body = malloc(req->content_length + 1);
		if (resp->body)
			memcpy(resp->body, req->body, req->content_length);
		resp->body_len = req->content_length;
	} else {
		resp->status = 404;
		if (asprintf(&resp->body, "%s %s q=%s\n", req->method, req->path,
			     req->query ? req->query : "-") < 0)
			resp->body = NULL;
		resp->body_len = resp->body ? strlen(resp->body) : 0;
	}
}

/* Reads one response: head into head (NUL-terminated), then exactly
 * Content-Length body bytes (unless head_only). Returns the body length
 * or -1. */
static long read_response(int fd, char *head, size_t hsz, char *body, size_t bsz, bool head_only)
{
	size_t n = 0;
	char *end, *cl;
	long len, got = 0;

	for (;;) {
		ssize_t r;

		if (n + 1 >= hsz)
			return -1;
		r = read(fd, head + n, 1); /* byte by byte: never read past the head */
		if (r <= 0)
			return -1;
		n++;
		head[n] = '\0';
		if ((end = strstr(head, "\r\n\r\n")))
			break;
	}
	cl = strstr(head, "Content-Length: ");
	if (!cl)
		return -1;
	len = strtol(cl + 16, NULL, 10);
	if (head_only)
		return len;
	if ((size_t)len > bsz)
		return -1;
	while (got < len) {
		ssize_t r = read(fd, body + got, (size_t)(len - got));

		if (r <= 0)
			return -1;
		got += r;
		if (got < len && got < 4096)
			usleep(1000); /* a slow reader at first: the server must wait on EPOLLOUT */
	}
	return len;
}

static int client(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char body[BIG_LEN];
	char head[1024];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), one;
	long n;
	const char *pipelined = "GET /a?x=1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /b HTTP/1.1\r\nHost: t\r\n\r\n";
	const char *post = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";

	strcpy(sun.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return 10;
	one = 4096; /* a small receive buffer makes the big response need EPOLLOUT */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	/* 1: a large response read slowly, on a kept-alive connection */
	if (write(fd, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n", 30) != 30)
		return 11;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), false);
	if (n != BIG_LEN || strncmp(head, "HTTP/1.1 200 OK\r\n", 17) || strstr(head, "Connection:"))
		return 12;
	for (long i = 0; i < n; i++)
		if (body[i] != (char)('a' + i % 26))
			return 13;
	/* 2: two pipelined requests in one write, the second a HEAD */
	if (write(fd, pipelined, strlen(pipelined)) != (ssize_t)strlen(pipelined))
		return 14;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), false);
	if (n < 0 || strncmp(head, "HTTP/1.1 404 Not Found\r\n", 24) || strncmp(body, "GET /a q=x=1\n", 13))
		return 15;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), true);
	if (n != (long)strlen("HEAD /b q=-\n"))
		return 16;
	/* 3: a body, sent in two parts; the HEAD response had no body, so
	 * the next bytes are this response */
	if (write(fd, post, strlen(post) - 2) != (ssize_t)strlen(post) - 2)
		return 17;
	usleep(20000);
	if (write(fd, "lo", 2) != 2)
		return 17;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), false);
	if (n != 5 || memcmp(body, "hello", 5))
		return 18;
	/* 4: a malformed request: 400 saying why, Connection: close, then EOF */
	if (write(fd, "GET /x HTTP/1.1\r\nHost t\r\n\r\n", 27) != 27)
		return 19;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), false);
	if (n <= 0 || strncmp(head, "HTTP/1.1 400 ", 13) || !strstr(head, "Connection: close\r\n") ||
	    !strstr(body, "malformed header field"))
		return 20;
	if (read(fd, body, 1) != 0)
		return 21;
	close(fd);
	/* 5: HTTP/1.0 closes after the response */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return 22;
	if (write(fd, "GET /c HTTP/1.0\r\n\r\n", 19) != 19)
		return 23;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), false);
	if (n <= 0 || !strstr(head, "Connection: close\r\n") || read(fd, body, 1) != 0)
		return 24;
	close(fd);
	return 0;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sun.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* More idle clients than the server takes: a new client is still answered
 * (the one idle longest is closed for it), and one that never finishes
 * its head is closed after HTTP_REQUEST_TIMEOUT_MS. */
static int idle_client(const char *path)
{
	static const char get[] = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok";
	int idle[HTTP_CONN_MAX + 8], fd;
	char head[512], body[256], c;
	struct timespec a, b;
	long n, ms;

	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		if ((idle[i] = unix_connect(path)) < 0)
			return 1;
	fd = unix_connect(path);
	if (fd < 0 || write(fd, get, sizeof(get) - 1) != (ssize_t)sizeof(get) - 1)
		return 2;
	n = read_response(fd, head, sizeof(head), body, sizeof(body), false);
	if (n != 2 || strncmp(head, "HTTP/1.1 200 ", 13) || memcmp(body, "ok", 2))
		return 3; /* before: 503 too many open connections */
	close(fd);
	/* the first idle one made room: closed */
	if (read(idle[0], &c, 1) != 0)
		return 4;
	/* the last one is still open: half a head, then the timeout */
	fd = idle[sizeof(idle) / sizeof(idle[0]) - 1];
	if (write(fd, "GET /slow HTTP/1.1\r\n", 19) != 19)
		return 5;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (read(fd, &c, 1) != 0)
		return 6;
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	if (ms > HTTP_REQUEST_TIMEOUT_MS + 2000)
		return 7;
	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		close(idle[i]);
	return 0;
}

struct srv_test {
	pid_t pid;
	int status;
	struct http_server *hs;
	uint64_t deadline;
};

static void srv_poll(struct loop *l, void *ctx)
{
	struct srv_test *st = ctx;

	if (st->pid > 0 && waitpid(st->pid, &st->status, WNOHANG) == st->pid)
		st->pid = 0;
	/* done when the client exited and the server closed its connections */
	if ((st->pid == 0 && http_server_conns(st->hs) == 0) || loop_now_ms() > st->deadline) {
		loop_stop(l);
		return;
	}
	loop_timer_add(l, 5, srv_poll, st);
}

/* Serves srv_handler on /tmp/warren-test-http-TAGPID.sock with CHILD(path)
 * forked as the client, until the client exited and the server closed its
 * connections: the loop's result in *ret, the client's wait status in *status. */
static void srv_run(const char *tag, int backlog, int (*child)(const char *path), int *count,
		    int *ret, int *status)
{
	char path[108];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct loop *l = loop_new();
	struct srv_test st = { .status = -1 };
	int lfd;

	T_ASSERT(l);
	snprintf(path, sizeof(path), "/tmp/warren-test-http-%s%d.sock", tag, (int)getpid());
	strcpy(sun.sun_path, path);
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	T_ASSERT(lfd >= 0);
	T_ASSERT(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0 && listen(lfd, backlog) == 0);
	T_ASSERT_INT(http_server_new(l, lfd, "test", srv_handler, count, &st.hs), 0);
	st.pid = fork();
	T_ASSERT(st.pid >= 0);
	if (st.pid == 0)
		_exit(child(path));
	st.deadline = loop_now_ms() + 20000;
	loop_timer_add(l, 5, srv_poll, &st);
	*ret = loop_run(l);
	if (st.pid > 0) {
		kill(st.pid, SIGKILL);
		waitpid(st.pid, &st.status, 0);
	}
	http_server_free(st.hs);
	loop_free(l);
	unlink(path);
	*status = st.status;
}

static void test_server(void)
{
	int count = 0, ret = -1, status = -1;

	srv_run("", 8, client, &count, &ret, &status);
	T_ASSERT_INT(ret, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		printf("#   client exit status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_ASSERT_INT(count, 5); /* big, a, b, echo, c; the malformed one never reaches it */
	http_server_free(NULL);
}

static void test_idle_clients(void)
{
	int count = 0, ret = -1, status = -1;

	srv_run("idle-", 256, idle_client, &count, &ret, &status);
	T_ASSERT_INT(ret, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		printf("#   idle client exit status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_ASSERT_INT(count, 1);
}

T_MAIN(T_CASE(test_complete_get), T_CASE(test_partial_heads), T_CASE(test_bare_lf),
       T_CASE(test_malformed), T_CASE(test_head_limit), T_CASE(test_too_many_fields),
       T_CASE(test_content_length), T_CASE(test_transfer_encoding),
       T_CASE(test_versions_keep_alive), T_CASE(test_query_arg), T_CASE(test_reasons),
       T_CASE(test_server), T_CASE(test_idle_clients))
