/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's HTTP/1.1 request parser (RFC 9112), strict because the
 * waypoint forwards what it accepts: a request the waypoint and the
 * application could frame differently is a smuggling vector, so anything
 * ambiguous is refused (400, or 501 for a transfer coding it does not
 * implement) and the connection closed by the caller.
 *
 * Pure and sans-I/O: no allocation, no global state, any thread; the
 * input is only read, and every string of a parsed request points into it.
 *
 * Head: h1_parse_head() takes the bytes received so far and answers
 * "complete" (the head's length), "incomplete, valid so far" (0), or an
 * error. Refused, with a reason naming the rule:
 *  - a request line that is not `token SP target SP HTTP/1.x CRLF`, a
 *    target with a byte outside VCHAR, a target not in origin form (or
 *    absolute form, or `*` for OPTIONS); CONNECT (a waypoint does not
 *    proxy CONNECT inside its tunnel);
 *  - a line ending other than CRLF (bare LF, bare CR);
 *  - obsolete line folding (a field line starting with SP or HTAB);
 *  - a field name that is not a token, or whitespace before the colon;
 *  - a field value with NUL, CR, LF or another control byte but HTAB;
 *  - Content-Length that is not 1*DIGIT (a list of equal values is
 *    accepted, as RFC 9112 6.3 allows), differing Content-Length values,
 *    a value above H1_BODY_LENGTH_MAX;
 *  - Transfer-Encoding with Content-Length; Transfer-Encoding in HTTP/1.0;
 *    Transfer-Encoding whose last coding is not chunked, or chunked
 *    twice; any coding but chunked is 501 (-ENOSYS);
 *  - no Host, more than one Host, or a Host with bytes outside an
 *    authority's (HTTP/1.1);
 *  - more than H1_HEADERS_MAX fields or a head longer than H1_HEAD_MAX
 *    (431, -E2BIG); an HTTP version but 1.0 and 1.1 (505,
 *    -EPROTONOSUPPORT).
 * Up to H1_LEADING_CRLF_MAX empty lines before the request line are
 * skipped (RFC 9112 2.2), counted in the head's length.
 *
 * Body: by the head's framing. H1_BODY_LENGTH: content_length bytes.
 * H1_BODY_CHUNKED: feed the bytes to h1_chunked_step() until it says
 * done; chunk sizes, extensions and trailer fields are checked as
 * strictly. The caller forwards the bytes it parsed as they were, so the
 * next hop frames them exactly as the waypoint did.
 */
#ifndef WARREN_WAYPOINT_HTTP1_H
#define WARREN_WAYPOINT_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H1_HEAD_MAX         16384
#define H1_HEADERS_MAX      100
#define H1_LEADING_CRLF_MAX 4
#define H1_BODY_LENGTH_MAX  (1ull << 40)

struct h1_str {
	const char *p;
	size_t n;
};

struct h1_field {
	struct h1_str name;
	struct h1_str value; /* OWS trimmed */
};

enum h1_body { H1_BODY_NONE, H1_BODY_LENGTH, H1_BODY_CHUNKED };

struct h1_request {
	struct h1_str method;
	struct h1_str target;    /* as received */
	struct h1_str path;      /* the target's path (before '?'); absolute form: after the
				    authority, or a static "/" when it has no path */
	struct h1_str query;     /* after '?', or {NULL, 0} */
	struct h1_str authority; /* Host, or the absolute form's authority */
	unsigned minor;          /* HTTP/1.minor: 0 or 1 */
	struct h1_field fields[H1_HEADERS_MAX];
	size_t n_fields;
	enum h1_body body;
	uint64_t content_length; /* H1_BODY_LENGTH */
	bool keep_alive;         /* from the version and Connection */
	bool expect_continue;    /* Expect: 100-continue */
	bool upgrade;            /* Connection: upgrade with an Upgrade field */
	const char *error;       /* on failure: which rule, a static string */
};

/*
 * Parses the head at the start of buf (len bytes). Returns its length
 * (> 0) and fills *req; 0 when incomplete and valid so far; or a negative
 * errno with req->error set: -EBADMSG (400), -E2BIG (431), -ENOSYS (501),
 * -EPROTONOSUPPORT (505).
 */
int h1_parse_head(const char *buf, size_t len, struct h1_request *req);

/* The status to answer for a negative return of h1_parse_head(). */
unsigned h1_error_status(int err);

/* The first field called name (case-insensitive), or NULL; *count (may be
 * NULL) gets how many fields have that name. */
const struct h1_field *h1_field(const struct h1_request *req, const char *name, size_t *count);

/* Does s equal the NUL-terminated lit, ignoring ASCII case? */
bool h1_str_ieq(struct h1_str s, const char *lit);

/* A response head from the application (the next hop). */
struct h1_response {
	unsigned status;         /* 100..599 */
	unsigned minor;
	enum h1_body body;       /* H1_BODY_NONE also for a body up to the close: see until_close */
	uint64_t content_length;
	bool until_close;        /* no framing: the body ends when the app closes */
	bool keep_alive;
	const char *error;
};

/*
 * Parses a response head, as strictly as a request's (line endings,
 * folding, field names and values, CL+TE, differing Content-Length).
 * head_request: the request was HEAD (no body whatever the fields say).
 * Returns the head's length, 0 (incomplete) or -EBADMSG / -E2BIG.
 */
int h1_parse_response_head(const char *buf, size_t len, bool head_request, struct h1_response *resp);

/* A chunked body being read. Zero it (or h1_chunked_init) per body. */
struct h1_chunked {
	int state;
	uint64_t left;    /* bytes of the current chunk's data still to come */
	unsigned digits;  /* of the current chunk-size */
	size_t line;      /* bytes of the current size or trailer line */
	size_t trailers;  /* trailer fields so far */
	bool done;        /* the last chunk and the trailer section ended */
	const char *error;
};

void h1_chunked_init(struct h1_chunked *c);

/*
 * Consumes up to len bytes of a chunked body. Returns how many were
 * consumed (the caller forwards them as they are; fewer than len only once
 * done: the rest is the next request), or -EBADMSG with c->error set.
 * *data (may be NULL) gets how many of the consumed bytes are chunk data
 * (for byte counts and limits).
 */
long h1_chunked_step(struct h1_chunked *c, const char *in, size_t len, size_t *data);

#endif
