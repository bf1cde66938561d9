/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tunnel's HTTP/1.1 server (contract in tunnel/http.h): a pure request
 * head parser and a per-listening-socket server on our loop. Each
 * connection owns one input buffer (allocated at accept, freed at close) and,
 * while it answers, one output buffer (head and body together); nothing is
 * allocated per byte or per read. A connection is in one of three states:
 *   READ    reading a request (EPOLLIN); complete ones are handled at once
 *   WRITE   writing the response (EPOLLOUT); no reading, so no pipelining
 *           beyond what is already buffered
 *   LINGER  the response is out and we close: write side shut down, input
 *           read and dropped until EOF or HTTP_LINGER_MS, so that unread
 *           request bytes do not make the kernel reset the connection and
 *           destroy the response before the client read it
 * Errors: every function returns 0 or -errno; connection functions that
 * may free the connection return < 0 after doing so, and their callers
 * then touch nothing of it.
 */
#include "tunnel/http.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "tunnel/loop.h"

#define HTTP_SRV_MAGIC  0x48545053u
#define HTTP_CONN_MAGIC 0x48545043u
#define HTTP_IN_SIZE    (HTTP_HEAD_MAX + HTTP_BODY_MAX)
#define ACCEPT_BATCH    16
#define ACCEPT_PAUSE_MS 100	/* after EMFILE & co: the listener stays readable */
#define HTTP_LINGER_MS  2000
#define LOG_EVERY_MS    10000
/* A response this big was built from many small allocations (a JSON tree
 * of thousands of objects) that the heap keeps once freed: hand the free
 * pages back when it is gone. */
#define HTTP_TRIM_BYTES (1u << 20)


/* ---- parser ---- */

static bool http_is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool http_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool http_is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Field values: VCHAR, obs-text, SP, HTAB; no other control byte. */
static bool http_is_vchar(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool http_name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && !strncasecmp(p, name, n);
}

/* Finds the line that starts at *pos within lim: sets [*start, *end) to its
 * content without CRLF/LF and *pos past it. 1 when found, 0 when its end is
 * not there yet, -EBADMSG for a CR not followed by LF. */
static int http_next_line(const char *buf, size_t lim, size_t *pos, size_t *start, size_t *end)
{
	const char *nl = memchr(buf + *pos, '\n', lim - *pos);
	size_t e;

	if (!nl)
		return 0;
	e = (size_t)(nl - buf);
	*start = *pos;
	*pos = e + 1;
	if (e > *start && buf[e - 1] == '\r')
		e--;
	if (memchr(buf + *start, '\r', e - *start))
		return -EBADMSG;
	*end = e;
	return 1;
}

static int http_fail(struct http_request *req, int err, const char *why)
{
	req->error = why;
	return err;
}

static int http_parse_request_line(const char *buf, size_t s, size_t e, struct http_request *req)
{
	size_t p = s, t;
	const char *v;

	while (p < e && http_is_tchar((unsigned char)buf[p]))
		p++;
	if (p == s || p >= e || buf[p] != ' ')
		return http_fail(req, -EBADMSG, "malformed request line: want METHOD SP /path SP HTTP/1.1");
	req->method = buf + s;
	req->method_len = p - s;
	t = ++p;
	while (p < e && (unsigned char)buf[p] > 0x20 && (unsigned char)buf[p] < 0x7f)
		p++;
	if (p == t || p >= e || buf[p] != ' ')
		return http_fail(req, -EBADMSG, "malformed request line: want METHOD SP /path SP HTTP/1.1");
	if (buf[t] != '/')
		return http_fail(req, -EBADMSG, "request target must be an absolute path (/...)");
	req->path = buf + t;
	req->path_len = p - t;
	v = memchr(req->path, '?', req->path_len);
	if (v) {
		req->query = v + 1;
		req->query_len = req->path_len - (size_t)(v + 1 - req->path);
		req->path_len = (size_t)(v - req->path);
	}
	p++;
	v = buf + p;
	if (e - p != 8 || memcmp(v, "HTTP/", 5) || !http_is_digit(v[5]) || v[6] != '.' || !http_is_digit(v[7]))
		return http_fail(req, -EBADMSG, "malformed HTTP version: want HTTP/1.1 or HTTP/1.0");
	if (v[5] != '1')
		return http_fail(req, -EPROTONOSUPPORT, "HTTP version not supported: use HTTP/1.1 or HTTP/1.0");
	req->minor = v[7] == '0' ? 0 : 1; /* 1.x, x > 1: answer as 1.1 (RFC 9110 2.5) */
	return 0;
}

/* "5" or "5, 5": every element the same number. UINT64_MAX when too long. */
static int http_parse_content_length(const char *v, size_t n, uint64_t *out)
{
	size_t i = 0;
	bool have = false;

	while (i < n) {
		uint64_t x = 0;
		size_t d = 0;

		for (; i < n && http_is_digit((unsigned char)v[i]); i++, d++)
			x = x > (UINT64_MAX - 9) / 10 ? UINT64_MAX : x * 10 + (uint64_t)(v[i] - '0');
		if (!d)
			return -EBADMSG;
		if (have && x != *out)
			return -EBADMSG;
		*out = x;
		have = true;
		while (i < n && http_is_ows((unsigned char)v[i]))
			i++;
		if (i == n)
			break;
		if (v[i++] != ',')
			return -EBADMSG;
		while (i < n && http_is_ows((unsigned char)v[i]))
			i++;
		if (i == n)
			return -EBADMSG; /* "5," */
	}
	return have ? 0 : -EBADMSG;
}

/* Connection: a comma-separated token list. */
static void http_parse_connection(const char *v, size_t n, bool *close, bool *keep)
{
	size_t i = 0;

	while (i < n) {
		size_t s;

		while (i < n && (http_is_ows((unsigned char)v[i]) || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',' && !http_is_ows((unsigned char)v[i]))
			i++;
		if (http_name_is(v + s, i - s, "close"))
			*close = true;
		else if (http_name_is(v + s, i - s, "keep-alive"))
			*keep = true;
	}
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	size_t lim = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	size_t pos = 0, s, e, n_fields = 0, n_host = 0;
	bool have_cl = false, conn_close = false, conn_keep = false;
	uint64_t cl = 0;
	int ret;

	*req = (struct http_request){ 0 };
	/* RFC 9112 2.2: ignore empty lines before the request line (some
	 * clients send a CRLF after a POST body). */
	while (pos < lim && (buf[pos] == '\n' || buf[pos] == '\r')) {
		if (buf[pos] == '\r') {
			if (pos + 1 >= lim)
				goto more;
			if (buf[pos + 1] != '\n')
				return http_fail(req, -EBADMSG, "bare CR in the request head");
			pos++;
		}
		pos++;
	}
	ret = http_next_line(buf, lim, &pos, &s, &e);
	if (ret < 0)
		return http_fail(req, ret, "bare CR in the request head");
	if (!ret)
		goto more;
	ret = http_parse_request_line(buf, s, e, req);
	if (ret < 0)
		return ret;
	for (;;) {
		size_t c, vs, ve;
		const char *name;

		ret = http_next_line(buf, lim, &pos, &s, &e);
		if (ret < 0)
			return http_fail(req, ret, "bare CR in the request head");
		if (!ret)
			goto more;
		if (s == e)
			break;
		if (++n_fields > HTTP_HEADERS_MAX)
			return http_fail(req, -E2BIG, "too many header fields (at most 64)");
		if (http_is_ows((unsigned char)buf[s]))
			return http_fail(req, -EBADMSG, "obsolete header line folding is not accepted");
		for (c = s; c < e && http_is_tchar((unsigned char)buf[c]); c++)
			;
		if (c == s || c >= e || buf[c] != ':')
			return http_fail(req, -EBADMSG, "malformed header field: want Name: value");
		name = buf + s;
		for (vs = c + 1; vs < e && http_is_ows((unsigned char)buf[vs]); vs++)
			;
		for (ve = e; ve > vs && http_is_ows((unsigned char)buf[ve - 1]); ve--)
			;
		for (size_t k = vs; k < ve; k++)
			if (!http_is_vchar((unsigned char)buf[k]))
				return http_fail(req, -EBADMSG, "control character in a header field value");
		if (http_name_is(name, c - s, "Content-Length")) {
			uint64_t v = 0;

			if (http_parse_content_length(buf + vs, ve - vs, &v) < 0 || (have_cl && v != cl))
				return http_fail(req, -EBADMSG, "invalid or conflicting Content-Length");
			cl = v;
			have_cl = true;
		} else if (http_name_is(name, c - s, "Transfer-Encoding")) {
			return http_fail(req, -ENOSYS, "Transfer-Encoding is not supported; send Content-Length");
		} else if (http_name_is(name, c - s, "Connection")) {
			http_parse_connection(buf + vs, ve - vs, &conn_close, &conn_keep);
		} else if (http_name_is(name, c - s, "Host")) {
			n_host++;
		} else if (http_name_is(name, c - s, "Expect")) {
			req->expect_continue = http_name_is(buf + vs, ve - vs, "100-continue");
		}
	}
	if (cl > HTTP_BODY_MAX)
		return http_fail(req, -EFBIG, "request body too large (at most 65536 bytes)");
	/* RFC 9112 3.2: a 1.1 request without exactly one Host is a 400. */
	if (req->minor >= 1 && n_host != 1)
		return http_fail(req, -EBADMSG, n_host ? "more than one Host header" : "missing Host header");
	if (n_host > 1)
		return http_fail(req, -EBADMSG, "more than one Host header");
	req->content_length = (size_t)cl;
	req->keep_alive = !conn_close && (req->minor >= 1 || conn_keep);
	return (int)pos;
more:
	if (len >= HTTP_HEAD_MAX)
		return http_fail(req, -E2BIG, "request head too large (at most 8192 bytes)");
	return 0;
}

int http_header(const char *head, size_t head_len, const char *name, const char **val,
		size_t *vlen)
{
	size_t pos = 0, s, e, c, vs, ve;
	int found = 0;

	*val = NULL;
	*vlen = 0;
	/* Skip the request line (and the empty lines before it). */
	while (pos < head_len && (head[pos] == '\n' || head[pos] == '\r'))
		pos++;
	if (http_next_line(head, head_len, &pos, &s, &e) != 1)
		return -EBADMSG;
	while (http_next_line(head, head_len, &pos, &s, &e) == 1 && s != e) {
		c = s;
		while (c < e && head[c] != ':')
			c++;
		if (c >= e || !http_name_is(head + s, c - s, name))
			continue;
		if (found++)
			return -EEXIST;
		for (vs = c + 1; vs < e && http_is_ows((unsigned char)head[vs]); vs++)
			;
		for (ve = e; ve > vs && http_is_ows((unsigned char)head[ve - 1]); ve--)
			;
		*val = head + vs;
		*vlen = ve - vs;
	}
	return found ? 0 : -ENOENT;
}

unsigned http_error_status(int err)
{
	switch (err) {
	case -E2BIG:
		return 431;
	case -EFBIG:
		return 413;
	case -ENOSYS:
		return 501;
	case -EPROTONOSUPPORT:
		return 505;
	default:
		return 400;
	}
}

const char *http_reason(unsigned status)
{
	static const struct {
		unsigned status;
		const char *reason;
	} reasons[] = {
		{ 100, "Continue" }, { 200, "OK" }, { 204, "No Content" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" }, { 403, "Forbidden" },
		{ 404, "Not Found" }, { 405, "Method Not Allowed" }, { 408, "Request Timeout" },
		{ 413, "Content Too Large" }, { 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 503, "Service Unavailable" }, { 505, "HTTP Version Not Supported" },
	};

	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

static int http_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The byte at s[*i] decoded ('+', %XX), advancing *i; -1 for a bad %. */
static int http_form_byte(const char *s, size_t n, size_t *i)
{
	unsigned char c = (unsigned char)s[*i];
	int h, l;

	if (c == '+') {
		(*i)++;
		return ' ';
	}
	if (c != '%') {
		(*i)++;
		return c;
	}
	if (*i + 2 >= n)
		return -1;
	h = http_hexval((unsigned char)s[*i + 1]);
	l = http_hexval((unsigned char)s[*i + 2]);
	if (h < 0 || l < 0)
		return -1;
	*i += 3;
	return h << 4 | l;
}

int http_query_arg(const char *query, size_t query_len, const char *name, char *out, size_t out_size)
{
	size_t i = 0, nl = strlen(name);

	while (query && i < query_len) {
		const char *amp = memchr(query + i, '&', query_len - i);
		size_t end = amp ? (size_t)(amp - query) : query_len;
		const char *eq = memchr(query + i, '=', end - i);
		size_t kend = eq ? (size_t)(eq - query) : end;
		size_t k = 0, o = 0;
		bool match = true;

		while (i < kend && match) {
			int b = http_form_byte(query, kend, &i);

			match = b >= 0 && k < nl && (unsigned char)name[k++] == b;
		}
		if (match && k == nl) {
			for (i = eq ? kend + 1 : end; i < end;) {
				int b = http_form_byte(query, end, &i);

				if (b <= 0)
					return -EBADMSG;
				if (o + 1 >= out_size)
					return -ENOSPC;
				out[o++] = (char)b;
			}
			if (!out_size)
				return -ENOSPC;
			out[o] = '\0';
			return (int)o;
		}
		i = end + 1;
	}
	return -ENOENT;
}

/* ---- server ---- */

enum conn_state { CONN_READ, CONN_WRITE, CONN_LINGER };

struct http_conn;

struct http_server {
	unsigned magic;
	struct loop *loop;
	int lfd;
	char *name;
	http_handler handler;
	void *ctx;
	struct http_conn *conns;
	size_t n_conns;
	struct loop_timer *pause; /* accepting paused after EMFILE & co */
	uint64_t full_logged_ms, err_logged_ms;
	void (*on_pause)(void *ctx);
	void *pause_ctx;
};

struct http_conn {
	unsigned magic;
	struct http_server *srv;
	struct http_conn *prev, *next;
	int fd;
	enum conn_state state;
	uint32_t events;
	struct loop_timer *timer;
	uint64_t wait_ms;	/* READ: when the wait for this request began */
	char *in;		/* HTTP_IN_SIZE bytes */
	size_t in_len;
	size_t need;		/* head + body of the current request once its head is parsed */
	struct http_request req;
	char *out;
	size_t out_len, out_off;
	bool close;		/* after the response being written */
	bool trim;		/* a big response was freed: malloc_trim() */
};

static void http_srv_resume(struct loop *l, void *ctx);

static void http_conn_free(struct http_conn *c)
{
	struct http_server *s;

	if (!c)
		return;
	CHECK_OBJ(c, HTTP_CONN_MAGIC);
	s = c->srv;
	if (c->timer)
		loop_timer_cancel(s->loop, c->timer);
	if (c->fd >= 0) {
		loop_del(s->loop, c->fd);
		close(c->fd);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;
	if (c->out && c->out_len >= HTTP_TRIM_BYTES)
		c->trim = true;
	if (s->pause) { /* an fd is free: try accepting again now */
		loop_timer_cancel(s->loop, s->pause);
		http_srv_resume(s->loop, s);
	}
	free(c->in);
	free(c->out);
	if (c->trim)
		malloc_trim(0);
	c->magic = 0;
	free(c);
}

/* Closes c; returns -1 so that callers can `return http_conn_drop(c);`. */
static int http_conn_drop(struct http_conn *c)
{
	http_conn_free(c);
	return -1;
}

static void http_conn_timeout(struct loop *l, void *ctx)
{
	struct http_conn *c = ctx;

	CHECK_OBJ(c, HTTP_CONN_MAGIC);
	c->timer = NULL;
	if (c->state != CONN_LINGER)
		log_debug("%s: closing a connection after %d s without a complete %s", c->srv->name,
			  (c->state == CONN_READ ? HTTP_REQUEST_TIMEOUT_MS : HTTP_TIMEOUT_MS) / 1000,
			  c->state == CONN_READ ? "request" : "response write");
	http_conn_free(c);
}

static int http_conn_arm(struct http_conn *c, uint64_t ms)
{
	if (c->timer)
		loop_timer_cancel(c->srv->loop, c->timer);
	c->timer = loop_timer_add(c->srv->loop, ms, http_conn_timeout, c);
	return c->timer ? 0 : http_conn_drop(c);
}

static int http_conn_events(struct http_conn *c, uint32_t events)
{
	if (c->events == events)
		return 0;
	if (loop_mod(c->srv->loop, c->fd, events) < 0)
		return http_conn_drop(c);
	c->events = events;
	return 0;
}

static void http_date(char *buf, size_t n)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;

	if (!gmtime_r(&now, &tm)) {
		snprintf(buf, n, "Thu, 01 Jan 1970 00:00:00 GMT");
		return;
	}
	snprintf(buf, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Queues one response (head, and body unless head_only) as c->out and
 * switches to WRITE. 0 or < 0 when c was closed (allocation failure). */
static int http_conn_queue(struct http_conn *c, unsigned status, const char *ctype, const char *body,
		      size_t body_len, bool head_only)
{
	char head[512], date[40];
	int hl;

	assert(!c->out);
	http_date(date, sizeof(date));
	hl = snprintf(head, sizeof(head),
		      "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
		      status, http_reason(status), date, ctype ? ctype : "text/plain; charset=utf-8",
		      body_len,
		      c->close ? "Connection: close\r\n" :
		      c->req.minor == 0 ? "Connection: keep-alive\r\n" : "");
	if (hl < 0 || (size_t)hl >= sizeof(head))
		return http_conn_drop(c);
	c->out_len = (size_t)hl + (head_only ? 0 : body_len);
	c->out = malloc(c->out_len);
	if (!c->out)
		return http_conn_drop(c);
	memcpy(c->out, head, (size_t)hl);
	if (!head_only && body_len)
		memcpy(c->out + hl, body, body_len);
	c->out_off = 0;
	c->state = CONN_WRITE;
	if (http_conn_events(c, EPOLLOUT) < 0)
		return -1;
	return http_conn_arm(c, HTTP_TIMEOUT_MS);
}

static int http_conn_error(struct http_conn *c, int err)
{
	char body[160];
	int n;

	n = snprintf(body, sizeof(body), "%s\n", c->req.error ? c->req.error : "bad request");
	c->close = true;
	return http_conn_queue(c, http_error_status(err), "text/plain; charset=utf-8", body,
			  (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1, false);
}

static void http_nul_at(struct http_conn *c, const char *p)
{
	assert(p >= c->in && p < c->in + c->in_len);
	c->in[p - c->in] = '\0';
}

static int http_conn_dispatch(struct http_conn *c)
{
	struct http_request *req = &c->req;
	struct http_response resp = { .status = 500 };
	bool head;
	int ret;

	/* The bytes after method, path and query are SP, '?' or SP: part of
	 * the consumed head, so they can become terminators. */
	http_nul_at(c, req->method + req->method_len);
	http_nul_at(c, req->path + req->path_len);
	if (req->query)
		http_nul_at(c, req->query + req->query_len);
	req->body = c->in + (c->need - req->content_length);
	head = !strcmp(req->method, "HEAD");
	c->close = !req->keep_alive;
	c->srv->handler(c->srv->ctx, req, &resp);
	if (!resp.body) {
		static const char oom[] = "out of memory answering the request\n";

		return http_conn_queue(c, 500, "text/plain; charset=utf-8", oom, sizeof(oom) - 1, head);
	}
	ret = http_conn_queue(c, resp.status, resp.content_type, resp.body, resp.body_len, head);
	free(resp.body);
	return ret;
}

/* In READ: answers the buffered request if it is complete. 1 when a
 * response was queued, 0 when more input is needed, < 0 when c is gone. */
static int http_conn_try_request(struct http_conn *c)
{
	if (!c->need) {
		int r = http_parse_request(c->in, c->in_len, &c->req);

		if (r < 0) {
			log_debug("%s: bad request (%s)", c->srv->name, c->req.error);
			return http_conn_error(c, r) < 0 ? -1 : 1;
		}
		if (!r)
			return 0;
		c->need = (size_t)r + c->req.content_length;
		if (c->req.expect_continue && c->in_len < c->need) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			/* Nothing else is in flight, so the socket buffer has room;
			 * if not, the client sends its body after a delay anyway. */
			(void)!send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	if (c->in_len < c->need)
		return 0;
	return http_conn_dispatch(c) < 0 ? -1 : 1;
}

/* In WRITE: 1 when the response is out, 0 when the socket is full, < 0
 * when c is gone. */
static int http_conn_flush(struct http_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return http_conn_drop(c);
		}
		c->out_off += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	if (c->out_len >= HTTP_TRIM_BYTES)
		malloc_trim(0);
	if (c->close) {
		c->state = CONN_LINGER;
		shutdown(c->fd, SHUT_WR);
		if (http_conn_events(c, EPOLLIN) < 0 || http_conn_arm(c, HTTP_LINGER_MS) < 0)
			return -1;
		return 0;
	}
	/* Keep-alive: what follows the request (a pipelined one) stays. */
	memmove(c->in, c->in + c->need, c->in_len - c->need);
	c->in_len -= c->need;
	c->need = 0;
	c->state = CONN_READ;
	c->wait_ms = loop_now_ms();
	if (http_conn_events(c, EPOLLIN) < 0 || http_conn_arm(c, HTTP_REQUEST_TIMEOUT_MS) < 0)
		return -1;
	return 1;
}

/* Handles buffered requests and writes responses until c waits for I/O or
 * is gone (< 0). */
static int http_conn_run(struct http_conn *c)
{
	for (;;) {
		int r;

		switch (c->state) {
		case CONN_READ:
			r = http_conn_try_request(c);
			break;
		case CONN_WRITE:
			r = http_conn_flush(c);
			break;
		default:
			return 0;
		}
		if (r <= 0)
			return r;
	}
}

static void http_conn_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct http_conn *c = ctx;
	ssize_t n;

	CHECK_OBJ(c, HTTP_CONN_MAGIC);
	switch (c->state) {
	case CONN_READ:
		assert(c->in_len < HTTP_IN_SIZE);
		n = read(fd, c->in + c->in_len, HTTP_IN_SIZE - c->in_len);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			http_conn_free(c); /* EOF or error: mid-request or between requests */
			return;
		}
		c->in_len += (size_t)n;
		/* Parse again only when a line may have ended: bounds the
		 * work of a client that sends its head a byte at a time. */
		if (c->need || c->in_len >= HTTP_HEAD_MAX ||
		    memchr(c->in + c->in_len - (size_t)n, '\n', (size_t)n))
			http_conn_run(c);
		return;
	case CONN_WRITE:
		http_conn_run(c);
		return;
	case CONN_LINGER:
		for (;;) {
			n = read(fd, c->in, HTTP_IN_SIZE);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			http_conn_free(c); /* EOF (or error): the client has our response */
			return;
		}
	}
}

static void http_conn_new(struct http_server *s, int fd)
{
	struct http_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c || !(c->in = malloc(HTTP_IN_SIZE))) {
		free(c);
		close(fd);
		return;
	}
	c->magic = HTTP_CONN_MAGIC;
	c->srv = s;
	c->fd = fd;
	c->state = CONN_READ;
	c->events = EPOLLIN;
	c->wait_ms = loop_now_ms();
	/* Responses are one buffer; their tail must not wait for an ACK. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (loop_add(s->loop, fd, EPOLLIN, http_conn_cb, c) < 0) {
		close(fd);
		free(c->in);
		free(c);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	http_conn_arm(c, HTTP_REQUEST_TIMEOUT_MS);
}

/* Full: the connection that has waited longest for a request (idle, or
 * still sending one) makes room; NULL when every one is answering. */
static struct http_conn *http_oldest_waiting(struct http_server *s)
{
	struct http_conn *o = NULL;

	for (struct http_conn *c = s->conns; c; c = c->next)
		if (c->state == CONN_READ && (!o || c->wait_ms <= o->wait_ms))
			o = c;
	return o;
}

static void http_srv_accept_cb(struct loop *l, int fd, uint32_t events, void *ctx);

static void http_srv_resume(struct loop *l, void *ctx)
{
	struct http_server *s = ctx;

	CHECK_OBJ(s, HTTP_SRV_MAGIC);
	s->pause = NULL;
	loop_mod(l, s->lfd, EPOLLIN);
}

void http_server_on_pause(struct http_server *s, void (*cb)(void *ctx), void *ctx)
{
	s->on_pause = cb;
	s->pause_ctx = ctx;
}

static bool http_log_due(uint64_t *last)
{
	uint64_t now = loop_now_ms();

	if (*last && now - *last < LOG_EVERY_MS)
		return false;
	*last = now;
	return true;
}

static void http_srv_accept_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
				   "Content-Type: text/plain; charset=utf-8\r\n"
				   "Content-Length: 44\r\nConnection: close\r\n\r\n"
				   "too many open connections; try again later\n";
	struct http_server *s = ctx;

	CHECK_OBJ(s, HTTP_SRV_MAGIC);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays
			 * queued and the listener readable; pause instead of spinning. */
			if (http_log_due(&s->err_logged_ms))
				log_warn("%s: cannot accept a connection: %s; pausing %d ms", s->name,
					 strerror(errno), ACCEPT_PAUSE_MS);
			if (s->on_pause)
				s->on_pause(s->pause_ctx);
			if (!s->pause && loop_mod(l, s->lfd, 0) == 0) {
				s->pause = loop_timer_add(l, ACCEPT_PAUSE_MS, http_srv_resume, s);
				if (!s->pause)
					loop_mod(l, s->lfd, EPOLLIN);
			}
			return;
		}
		if (s->n_conns >= HTTP_CONN_MAX) {
			struct http_conn *old = http_oldest_waiting(s);

			if (http_log_due(&s->full_logged_ms))
				log_warn("%s: %d connections open; %s", s->name, HTTP_CONN_MAX,
					 old ? "closing the one idle longest" : "refusing more");
			if (!old) {
				(void)!send(cfd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
				close(cfd);
				continue;
			}
			http_conn_free(old);
		}
		http_conn_new(s, cfd);
	}
}

int http_server_new(struct loop *l, int lfd, const char *name, http_handler handler, void *ctx,
		    struct http_server **out)
{
	struct http_server *s = NULL;
	int ret, fl;

	*out = NULL;
	fl = fcntl(lfd, F_GETFL);
	if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0) {
		ret = -errno;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(name ? name : "http"))) {
		ret = -ENOMEM;
		goto out;
	}
	s->magic = HTTP_SRV_MAGIC;
	s->loop = l;
	s->lfd = lfd;
	s->handler = handler;
	s->ctx = ctx;
	ret = loop_add(l, lfd, EPOLLIN, http_srv_accept_cb, s);
	if (ret < 0)
		goto out;
	*out = s;
	return 0;
out:
	if (s)
		free(s->name);
	free(s);
	close(lfd);
	return ret;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	CHECK_OBJ(s, HTTP_SRV_MAGIC);
	while (s->conns)
		http_conn_free(s->conns);
	if (s->pause)
		loop_timer_cancel(s->loop, s->pause);
	loop_del(s->loop, s->lfd);
	close(s->lfd);
	free(s->name);
	s->magic = 0;
	free(s);
}

size_t http_server_conns(const struct http_server *s)
{
	return s ? s->n_conns : 0;
}
