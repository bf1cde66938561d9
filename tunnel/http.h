/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small, strict HTTP/1.1 server for the tunnel's admin, readiness and
 * metrics ports, driven by tunnel/loop.h (no thread, no TLS: plain HTTP on
 * loopback, node addresses and the admin Unix socket).
 *
 * Parser: http_parse_request() is pure (no allocation, no I/O, the buffer is
 * only read) and bounded: a head is at most HTTP_HEAD_MAX bytes with at most
 * HTTP_HEADERS_MAX fields, a body at most HTTP_BODY_MAX bytes and only with
 * Content-Length (Transfer-Encoding is refused with 501).
 *
 * Server: one http_server per listening socket. It owns that socket (closed
 * by http_server_free(), also when http_server_new() fails) and every
 * connection it accepts: at most HTTP_CONN_MAX at once (beyond that a new
 * connection closes the one that has waited longest for a request, idle
 * or still sending it, so a few idle clients cannot lock others out; when
 * every one is being answered, the new one gets a best-effort 503 and is
 * closed), each with one input
 * buffer of HTTP_HEAD_MAX + HTTP_BODY_MAX bytes allocated at accept and
 * freed at close. Requests are handled one at a time per connection: reading
 * stops until the response, one malloc'd buffer, is written (EPOLLOUT, so a
 * slow reader costs no CPU). HTTP/1.1 connections are kept alive unless the
 * client says "Connection: close"; HTTP/1.0 ones only with "Connection:
 * keep-alive". A request must arrive within HTTP_REQUEST_TIMEOUT_MS of the
 * connection's start or of the previous response, and a response must be
 * taken by the client within HTTP_TIMEOUT_MS; otherwise the connection is
 * closed. HEAD is answered with the headers of the GET response. Malformed
 * requests get 400 (431 head too large, 413 body too large, 501
 * Transfer-Encoding, 505 not HTTP/1.x) with a plain-text body saying what
 * was wrong, and the connection is closed. When accept() fails for want
 * of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) the server stops
 * polling its socket for 100 ms, or until one of its connections closes,
 * instead of spinning; http_server_on_pause() is told each time.
 */
#ifndef WARREN_HTTP_H
#define WARREN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct loop;

#define HTTP_HEAD_MAX    8192    /* request line + header fields + empty line */
#define HTTP_HEADERS_MAX 64      /* header fields per request */
#define HTTP_BODY_MAX    65536   /* Content-Length */
#define HTTP_CONN_MAX    64      /* open connections per server */
#define HTTP_REQUEST_TIMEOUT_MS 5000 /* to receive a request (head and body) */
#define HTTP_TIMEOUT_MS  30000   /* to send a response */

/* A parsed request head. Strings point into the parsed buffer and are not
 * NUL-terminated by the parser; the server NUL-terminates method, path and
 * query in its own buffer before it calls the handler, so handlers may use
 * them as C strings. */
struct http_request {
	const char *method;	/* a token, case-sensitive ("GET") */
	size_t method_len;
	const char *path;	/* the target up to '?', starts with '/', not decoded */
	size_t path_len;
	const char *query;	/* after '?', without it; NULL when the target has none */
	size_t query_len;
	unsigned minor;		/* HTTP/1.minor: 0 or 1 */
	bool keep_alive;	/* from the version and Connection */
	bool expect_continue;	/* "Expect: 100-continue" */
	size_t content_length;	/* <= HTTP_BODY_MAX */
	const char *body;	/* set by the server (content_length bytes), not by the parser */
	const char *error;	/* on failure: what was wrong, a static string for the 4xx/5xx body */
};

/*
 * Parses the request head at the start of buf (len bytes). Returns the head's
 * length (> 0, up to and including its empty line; leading empty lines are
 * skipped and counted) and fills *req; 0 when the head is incomplete so far
 * and valid as far as it goes; or a negative errno with req->error set:
 *   -EBADMSG          malformed (400)
 *   -E2BIG            head longer than HTTP_HEAD_MAX or more than HTTP_HEADERS_MAX fields (431)
 *   -EFBIG            Content-Length above HTTP_BODY_MAX (413)
 *   -ENOSYS           Transfer-Encoding present (501)
 *   -EPROTONOSUPPORT  an HTTP version other than 1.x (505)
 * Bytes after the head (a body, a pipelined request) are not examined.
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/* The value of header field name (case-insensitive) in a head that
 * http_parse_request() accepted (head_len: its return), trimmed, not
 * NUL-terminated. 0, -ENOENT (absent), -EEXIST (more than once: a
 * credential must not be ambiguous), -EBADMSG. */
int http_header(const char *head, size_t head_len, const char *name, const char **val,
		size_t *vlen);
/* The HTTP status for a negative return of http_parse_request(). */
unsigned http_error_status(int err);

/* The reason phrase for a status ("Not Found"); "Unknown" for others. */
const char *http_reason(unsigned status);

/*
 * Looks up argument name in an application/x-www-form-urlencoded query
 * (a=1&b=2; '+' is a space, %XX a byte; names are decoded before they are
 * compared). query may be NULL. Writes the decoded, NUL-terminated value of
 * the first match to out and returns its length; -ENOENT when name is
 * absent, -EBADMSG for a bad %XX or a decoded NUL, -ENOSPC when the value
 * does not fit out_size.
 */
int http_query_arg(const char *query, size_t query_len, const char *name, char *out, size_t out_size);

/* What a handler answers. body is malloc'd (NUL-terminated or not: body_len
 * counts) and owned by the server once the handler returns, which frees it;
 * NULL body means an allocation failed and the server answers 500.
 * content_type must outlive the call (a string literal). */
struct http_response {
	unsigned status;
	const char *content_type;
	char *body;
	size_t body_len;
};

/* Called on the loop thread for each complete request; must fill resp
 * (initially { 500, NULL, NULL, 0 }). req and its strings are valid only
 * during the call. */
typedef void (*http_handler)(void *ctx, const struct http_request *req, struct http_response *resp);

struct http_server;

/*
 * Serves HTTP on lfd, a listening stream socket (TCP or Unix; made
 * non-blocking here). The server owns lfd from this call on, also on failure.
 * handler(ctx, ...) answers requests; name is used in log lines (copied).
 * Returns 0 and *out, or -errno (*out NULL).
 */
int http_server_new(struct loop *l, int lfd, const char *name, http_handler handler, void *ctx,
		    struct http_server **out);

/* Closes the listening socket and every connection; NULL is a no-op. */
void http_server_free(struct http_server *s);

/* cb(ctx) on each accept pause (for a metric); cb NULL: none. */
void http_server_on_pause(struct http_server *s, void (*cb)(void *ctx), void *ctx);

/* Open connections (for tests and logs). */
size_t http_server_conns(const struct http_server *s);

#endif
