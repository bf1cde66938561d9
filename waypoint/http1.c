/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's strict HTTP/1.1 request parser (contract in waypoint/http1.h). */
#include "waypoint/http1.h"

#include <errno.h>
#include <string.h>

static bool h1_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool h1_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB (obs-text allowed, as RFC 9110 5.5 does) */
static bool h1_value_char(unsigned char c)
{
	return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
}

static bool h1_lower_eq(const char *p, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n && lit[i]; i++) {
		char a = p[i], b = lit[i];

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != b)
			return false;
	}
	return i == n && !lit[i];
}

bool h1_str_ieq(struct h1_str s, const char *lit)
{
	size_t i;

	for (i = 0; i < s.n && lit[i]; i++) {
		char a = s.p[i], b = lit[i];

		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return i == s.n && !lit[i];
}

const struct h1_field *h1_field(const struct h1_request *req, const char *name, size_t *count)
{
	const struct h1_field *first = NULL;
	size_t n = 0;

	for (size_t i = 0; i < req->n_fields; i++) {
		if (!h1_str_ieq(req->fields[i].name, name))
			continue;
		if (!first)
			first = &req->fields[i];
		n++;
	}
	if (count)
		*count = n;
	return first;
}

unsigned h1_error_status(int err)
{
	switch (err) {
	case -E2BIG:
		return 431;
	case -ENOSYS:
		return 501;
	case -EPROTONOSUPPORT:
		return 505;
	case -EOPNOTSUPP:
		return 405;
	default:
		return 400;
	}
}

static int h1_fail(struct h1_request *req, int err, const char *why)
{
	req->error = why;
	return err;
}

/* The next element of a comma-separated list at *pos of s (OWS trimmed,
 * empty elements skipped, as RFC 9110 5.6.1 asks of recipients). */
static bool h1_next_elem(struct h1_str s, size_t *pos, struct h1_str *out)
{
	while (*pos < s.n) {
		size_t b = *pos, e;

		while (*pos < s.n && s.p[*pos] != ',')
			(*pos)++;
		e = *pos;
		if (*pos < s.n)
			(*pos)++;
		while (b < e && h1_ows((unsigned char)s.p[b]))
			b++;
		while (e > b && h1_ows((unsigned char)s.p[e - 1]))
			e--;
		if (e > b) {
			*out = (struct h1_str){ s.p + b, e - b };
			return true;
		}
	}
	return false;
}

/* An authority: reg-name / IPv4 / [IPv6] with an optional port. */
static bool h1_authority_ok(struct h1_str a)
{
	if (!a.n)
		return false;
	for (size_t i = 0; i < a.n; i++) {
		unsigned char c = (unsigned char)a.p[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      strchr("-._~!$&'()*+,;=:[]%", c)))
			return false;
	}
	return true;
}

static int h1_request_line(const char *l, size_t n, struct h1_request *req)
{
	size_t i = 0, t;
	struct h1_str tg;

	while (i < n && h1_tchar((unsigned char)l[i]))
		i++;
	if (!i || i == n || l[i] != ' ')
		return h1_fail(req, -EBADMSG, "request line: the method is not a token followed by one space");
	req->method = (struct h1_str){ l, i };
	t = ++i;
	while (i < n && (unsigned char)l[i] > 0x20 && (unsigned char)l[i] < 0x7f)
		i++;
	if (i == t || i == n || l[i] != ' ')
		return h1_fail(req, -EBADMSG, "request line: the target has a byte outside VCHAR or is not followed by one space");
	tg = (struct h1_str){ l + t, i - t };
	req->target = tg;
	i++;
	if (n - i != 8 || memcmp(l + i, "HTTP/", 5) || l[i + 6] != '.' || l[i + 5] < '0' ||
	    l[i + 5] > '9' || l[i + 7] < '0' || l[i + 7] > '9')
		return h1_fail(req, -EBADMSG, "request line: the version is not HTTP/DIGIT.DIGIT");
	if (l[i + 5] != '1')
		return h1_fail(req, -EPROTONOSUPPORT, "only HTTP/1.x is served");
	req->minor = l[i + 7] == '0' ? 0 : 1;

	if (h1_str_ieq(req->method, "CONNECT"))
		return h1_fail(req, -EOPNOTSUPP, "CONNECT is not proxied by the waypoint");
	if (tg.p[0] == '/') {
		req->path = tg;
	} else if (tg.n == 1 && tg.p[0] == '*') {
		if (!h1_str_ieq(req->method, "OPTIONS"))
			return h1_fail(req, -EBADMSG, "request line: target * is for OPTIONS only");
		req->path = tg;
		return 0;
	} else {
		size_t s = 0, a;

		if (tg.n > 7 && h1_lower_eq(tg.p, 7, "http://"))
			s = 7;
		else if (tg.n > 8 && h1_lower_eq(tg.p, 8, "https://"))
			s = 8;
		if (!s)
			return h1_fail(req, -EBADMSG, "request line: the target is neither origin form nor absolute form");
		for (a = s; a < tg.n && tg.p[a] != '/' && tg.p[a] != '?' && tg.p[a] != '#'; a++)
			;
		req->authority = (struct h1_str){ tg.p + s, a - s };
		if (!h1_authority_ok(req->authority) || memchr(req->authority.p, '@', req->authority.n))
			return h1_fail(req, -EBADMSG, "request line: the absolute form's authority is not a host[:port]");
		req->path = a < tg.n ? (struct h1_str){ tg.p + a, tg.n - a } : (struct h1_str){ "/", 1 };
	}
	if (memchr(req->path.p, '#', req->path.n))
		return h1_fail(req, -EBADMSG, "request line: the target has a fragment");
	{
		const char *q = memchr(req->path.p, '?', req->path.n);

		if (q) {
			req->query = (struct h1_str){ q + 1, req->path.n - (size_t)(q + 1 - req->path.p) };
			req->path.n = (size_t)(q - req->path.p);
		}
	}
	if (!req->path.n)
		req->path = (struct h1_str){ "/", 1 };
	return 0;
}

static int h1_field_line(const char *l, size_t n, struct h1_field *f, struct h1_request *req)
{
	size_t i = 0, b, e;

	if (h1_ows((unsigned char)l[0]))
		return h1_fail(req, -EBADMSG, "obsolete line folding (a field line starts with whitespace)");
	while (i < n && h1_tchar((unsigned char)l[i]))
		i++;
	if (i == n || l[i] != ':') {
		if (i < n && h1_ows((unsigned char)l[i]))
			return h1_fail(req, -EBADMSG, "whitespace between a field name and its colon");
		return h1_fail(req, -EBADMSG, "a field name is not a token followed by a colon");
	}
	if (!i)
		return h1_fail(req, -EBADMSG, "a field line has an empty name");
	f->name = (struct h1_str){ l, i };
	for (b = i + 1; b < n; b++)
		if (!h1_value_char((unsigned char)l[b]))
			return h1_fail(req, -EBADMSG, "a field value has a control byte (NUL, CR, LF, ...)");
	b = i + 1;
	e = n;
	while (b < e && h1_ows((unsigned char)l[b]))
		b++;
	while (e > b && h1_ows((unsigned char)l[e - 1]))
		e--;
	f->value = (struct h1_str){ l + b, e - b };
	return 0;
}

/* Content-Length, Transfer-Encoding, Host, Connection, Upgrade, Expect. */
static int h1_semantics(struct h1_request *req)
{
	bool have_cl = false, have_te = false, chunked_last = false, other = false;
	bool conn_close = false, conn_keep = false, conn_upgrade = false, up = false;
	unsigned chunked = 0;
	size_t n_host = 0;
	uint64_t cl = 0;

	for (size_t k = 0; k < req->n_fields; k++) {
		const struct h1_field *f = &req->fields[k];
		struct h1_str el;
		size_t pos = 0;
		bool any = false;

		if (h1_str_ieq(f->name, "content-length")) {
			while (h1_next_elem(f->value, &pos, &el)) {
				uint64_t v = 0;

				for (size_t i = 0; i < el.n; i++) {
					if (el.p[i] < '0' || el.p[i] > '9')
						return h1_fail(req, -EBADMSG, "Content-Length is not a decimal number");
					v = v * 10 + (uint64_t)(el.p[i] - '0');
					if (v > H1_BODY_LENGTH_MAX)
						return h1_fail(req, -EBADMSG, "Content-Length is too large");
				}
				if (have_cl && v != cl)
					return h1_fail(req, -EBADMSG, "Content-Length has differing values");
				have_cl = any = true;
				cl = v;
			}
			if (!any)
				return h1_fail(req, -EBADMSG, "Content-Length is empty");
		} else if (h1_str_ieq(f->name, "transfer-encoding")) {
			while (h1_next_elem(f->value, &pos, &el)) {
				have_te = any = true;
				if (h1_str_ieq(el, "chunked")) {
					chunked++;
					chunked_last = true;
				} else {
					other = true;
					chunked_last = false;
				}
			}
			if (!any)
				return h1_fail(req, -EBADMSG, "Transfer-Encoding is empty");
		} else if (h1_str_ieq(f->name, "host")) {
			n_host++;
			if (!h1_authority_ok(f->value) || memchr(f->value.p, '@', f->value.n))
				return h1_fail(req, -EBADMSG, "Host is not a host[:port]");
			if (!req->authority.p)
				req->authority = f->value;
		} else if (h1_str_ieq(f->name, "connection")) {
			while (h1_next_elem(f->value, &pos, &el)) {
				conn_close |= h1_str_ieq(el, "close");
				conn_keep |= h1_str_ieq(el, "keep-alive");
				conn_upgrade |= h1_str_ieq(el, "upgrade");
			}
		} else if (h1_str_ieq(f->name, "upgrade")) {
			up = true;
		} else if (h1_str_ieq(f->name, "expect")) {
			req->expect_continue = h1_str_ieq(f->value, "100-continue");
		}
	}
	if (n_host > 1)
		return h1_fail(req, -EBADMSG, "more than one Host field");
	if (!n_host && req->minor == 1)
		return h1_fail(req, -EBADMSG, "HTTP/1.1 request without Host");
	if (!req->authority.p)
		return h1_fail(req, -EBADMSG, "no authority (Host) to route by");
	if (have_te) {
		if (have_cl)
			return h1_fail(req, -EBADMSG, "both Content-Length and Transfer-Encoding");
		if (req->minor == 0)
			return h1_fail(req, -EBADMSG, "Transfer-Encoding in an HTTP/1.0 request");
		if (!chunked_last)
			return h1_fail(req, -EBADMSG, "Transfer-Encoding does not end in chunked");
		if (chunked > 1)
			return h1_fail(req, -EBADMSG, "Transfer-Encoding has chunked more than once");
		if (other)
			return h1_fail(req, -ENOSYS, "a transfer coding other than chunked");
		req->body = H1_BODY_CHUNKED;
	} else if (have_cl && cl) {
		req->body = H1_BODY_LENGTH;
		req->content_length = cl;
	}
	req->keep_alive = req->minor == 1 ? !conn_close : (conn_keep && !conn_close);
	req->upgrade = conn_upgrade && up;
	return 0;
}

int h1_parse_head(const char *buf, size_t len, struct h1_request *req)
{
	size_t pos = 0, skipped = 0;
	bool first = true;
	int ret;

	memset(req, 0, sizeof(*req));
	while (pos < len && buf[pos] == '\r') {
		if (pos + 1 == len)
			return 0;
		if (buf[pos + 1] != '\n')
			return h1_fail(req, -EBADMSG, "a bare CR");
		if (++skipped > H1_LEADING_CRLF_MAX)
			return h1_fail(req, -EBADMSG, "too many empty lines before the request line");
		pos += 2;
	}
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n;

		if (!nl) {
			if (len >= H1_HEAD_MAX)
				return h1_fail(req, -E2BIG, "request head too large");
			return 0;
		}
		n = (size_t)(nl - (buf + pos));
		if ((size_t)(nl - buf) + 1 > H1_HEAD_MAX)
			return h1_fail(req, -E2BIG, "request head too large");
		if (!n || buf[pos + n - 1] != '\r')
			return h1_fail(req, -EBADMSG, "a line ends in a bare LF, not CRLF");
		n--; /* without CR */
		if (memchr(buf + pos, '\r', n))
			return h1_fail(req, -EBADMSG, "a bare CR");
		if (first) {
			if (!n)
				return h1_fail(req, -EBADMSG, "empty request line");
			ret = h1_request_line(buf + pos, n, req);
			if (ret)
				return ret;
			first = false;
		} else if (!n) {
			pos += 2;
			break;
		} else {
			if (req->n_fields == H1_HEADERS_MAX)
				return h1_fail(req, -E2BIG, "too many header fields");
			ret = h1_field_line(buf + pos, n, &req->fields[req->n_fields], req);
			if (ret)
				return ret;
			req->n_fields++;
		}
		pos += n + 2;
	}
	ret = h1_semantics(req);
	return ret ? ret : (int)pos;
}

int h1_parse_response_head(const char *buf, size_t len, bool head_request, struct h1_response *resp)
{
	struct h1_request scratch; /* its fields only (3 KiB of stack) */
	struct h1_request *f = &scratch;
	size_t pos = 0;
	bool first = true, te = false, cl = false, conn_close = false, conn_keep = false;
	uint64_t clv = 0;

	memset(resp, 0, sizeof(*resp));
	f->n_fields = 0;
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n;

		if (!nl) {
			if (len >= H1_HEAD_MAX) {
				resp->error = "response head too large";
				return -E2BIG;
			}
			return 0;
		}
		n = (size_t)(nl - (buf + pos));
		if ((size_t)(nl - buf) + 1 > H1_HEAD_MAX) {
			resp->error = "response head too large";
			return -E2BIG;
		}
		if (!n || buf[pos + n - 1] != '\r' || memchr(buf + pos, '\r', n - 1)) {
			resp->error = "a response line does not end in CRLF";
			return -EBADMSG;
		}
		n--;
		if (first) {
			const char *l = buf + pos;

			if (n < 12 || memcmp(l, "HTTP/1.", 7) || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
			    l[9] < '1' || l[9] > '5' || l[10] < '0' || l[10] > '9' || l[11] < '0' ||
			    l[11] > '9' || (n > 12 && l[12] != ' ')) {
				resp->error = "the status line is not HTTP/1.x NNN reason";
				return -EBADMSG;
			}
			resp->minor = (unsigned)(l[7] - '0');
			resp->status = (unsigned)((l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0'));
			for (size_t i = 12; i < n; i++)
				if (!h1_value_char((unsigned char)l[i])) {
					resp->error = "the reason phrase has a control byte";
					return -EBADMSG;
				}
			first = false;
		} else if (!n) {
			pos += 2;
			break;
		} else {
			struct h1_field *fl;

			if (f->n_fields == H1_HEADERS_MAX) {
				resp->error = "too many response header fields";
				return -E2BIG;
			}
			fl = &f->fields[f->n_fields];
			if (h1_field_line(buf + pos, n, fl, f)) {
				resp->error = f->error;
				return -EBADMSG;
			}
			f->n_fields++;
		}
		pos += n + 2;
	}
	for (size_t k = 0; k < f->n_fields; k++) {
		const struct h1_field *fl = &f->fields[k];
		struct h1_str el;
		size_t p2 = 0;

		if (h1_str_ieq(fl->name, "content-length")) {
			while (h1_next_elem(fl->value, &p2, &el)) {
				uint64_t v = 0;

				for (size_t i = 0; i < el.n; i++) {
					if (el.p[i] < '0' || el.p[i] > '9' || v > H1_BODY_LENGTH_MAX) {
						resp->error = "bad Content-Length in the response";
						return -EBADMSG;
					}
					v = v * 10 + (uint64_t)(el.p[i] - '0');
				}
				if (cl && v != clv) {
					resp->error = "differing Content-Length in the response";
					return -EBADMSG;
				}
				cl = true;
				clv = v;
			}
		} else if (h1_str_ieq(fl->name, "transfer-encoding")) {
			bool last_chunked = false;

			while (h1_next_elem(fl->value, &p2, &el))
				last_chunked = h1_str_ieq(el, "chunked");
			if (!last_chunked) {
				resp->error = "a response Transfer-Encoding that does not end in chunked";
				return -EBADMSG;
			}
			te = true;
		} else if (h1_str_ieq(fl->name, "connection")) {
			while (h1_next_elem(fl->value, &p2, &el)) {
				conn_close |= h1_str_ieq(el, "close");
				conn_keep |= h1_str_ieq(el, "keep-alive");
			}
		}
	}
	if (te && cl) {
		resp->error = "both Content-Length and Transfer-Encoding in the response";
		return -EBADMSG;
	}
	resp->keep_alive = resp->minor == 1 ? !conn_close : (conn_keep && !conn_close);
	if (head_request || resp->status < 200 || resp->status == 204 || resp->status == 304)
		return (int)pos;
	if (te) {
		resp->body = H1_BODY_CHUNKED;
	} else if (cl) {
		resp->body = clv ? H1_BODY_LENGTH : H1_BODY_NONE;
		resp->content_length = clv;
	} else {
		resp->until_close = true;
		resp->keep_alive = false;
	}
	return (int)pos;
}

/* ---- chunked bodies ---- */

enum {
	CH_SIZE,     /* chunk-size digits */
	CH_EXT,      /* after the digits, up to CR */
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TR_START, /* start of a trailer line (or the final CRLF) */
	CH_TR_NAME,
	CH_TR_VALUE,
	CH_TR_LF,
	CH_END_LF,
	CH_DONE,
};

#define H1_CHUNK_LINE_MAX 4096

void h1_chunked_init(struct h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static long h1_ch_fail(struct h1_chunked *c, const char *why)
{
	c->error = why;
	return -EBADMSG;
}

static int h1_hex(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

long h1_chunked_step(struct h1_chunked *c, const char *in, size_t len, size_t *data)
{
	size_t i = 0, d = 0;

	if (data)
		*data = 0;
	if (c->error)
		return -EBADMSG;
	while (i < len && c->state != CH_DONE) {
		unsigned char ch = (unsigned char)in[i];

		if (c->state == CH_DATA) {
			size_t take = len - i < c->left ? len - i : (size_t)c->left;

			c->left -= take;
			i += take;
			d += take;
			if (!c->left)
				c->state = CH_DATA_CR;
			continue;
		}
		i++;
		if (c->state != CH_DATA_CR && c->state != CH_DATA_LF && ++c->line > H1_CHUNK_LINE_MAX)
			return h1_ch_fail(c, "a chunk-size or trailer line is too long");
		switch (c->state) {
		case CH_SIZE:
			if (h1_hex(ch) >= 0) {
				if (++c->digits > 15)
					return h1_ch_fail(c, "chunk-size has too many digits");
				c->left = c->left * 16 + (uint64_t)h1_hex(ch);
				break;
			}
			if (!c->digits)
				return h1_ch_fail(c, "chunk-size is not a hex number");
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == ';' || h1_ows(ch))
				c->state = CH_EXT;
			else
				return h1_ch_fail(c, "chunk-size is followed by a byte that is no extension");
			break;
		case CH_EXT:
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (!(h1_ows(ch) || (ch > 0x20 && ch < 0x7f)))
				return h1_ch_fail(c, "a chunk extension has a control byte");
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return h1_ch_fail(c, "a chunk-size line ends in a bare CR");
			c->line = 0;
			c->digits = 0;
			c->state = c->left ? CH_DATA : CH_TR_START;
			break;
		case CH_DATA_CR:
			if (ch != '\r')
				return h1_ch_fail(c, "chunk data is longer than its chunk-size");
			c->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				return h1_ch_fail(c, "chunk data is not followed by CRLF");
			c->line = 0;
			c->state = CH_SIZE;
			break;
		case CH_TR_START:
			if (ch == '\r') {
				c->state = CH_END_LF;
				break;
			}
			if (h1_ows(ch))
				return h1_ch_fail(c, "obsolete line folding in the trailer section");
			if (!h1_tchar(ch))
				return h1_ch_fail(c, "a trailer field name is not a token");
			if (++c->trailers > H1_HEADERS_MAX)
				return h1_ch_fail(c, "too many trailer fields");
			c->state = CH_TR_NAME;
			break;
		case CH_TR_NAME:
			if (ch == ':')
				c->state = CH_TR_VALUE;
			else if (!h1_tchar(ch))
				return h1_ch_fail(c, "a trailer field name is not a token followed by a colon");
			break;
		case CH_TR_VALUE:
			if (ch == '\r')
				c->state = CH_TR_LF;
			else if (!h1_value_char(ch))
				return h1_ch_fail(c, "a trailer field value has a control byte");
			break;
		case CH_TR_LF:
			if (ch != '\n')
				return h1_ch_fail(c, "a trailer line ends in a bare CR");
			c->line = 0;
			c->state = CH_TR_START;
			break;
		case CH_END_LF:
			if (ch != '\n')
				return h1_ch_fail(c, "the chunked body ends in a bare CR");
			c->state = CH_DONE;
			c->done = true;
			break;
		}
	}
	if (data)
		*data = d;
	return (long)i;
}
