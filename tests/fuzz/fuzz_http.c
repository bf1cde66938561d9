/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the admin server's untrusted input (tunnel/http.c):
 * the input is a request head as a client sends it. Runs the head parser
 * and checks its contract: a complete head is at most HTTP_HEAD_MAX bytes,
 * every string points inside it, a head is not complete one byte earlier,
 * failures carry a reason; then decodes query arguments of the parsed
 * target and of the raw input. Aborts on a broken invariant; memory errors
 * are caught by ASan/UBSan.
 */
#include "tunnel/http.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const char *p, size_t n, const char *buf, size_t len)
{
	if (p && (p < buf || p + n > buf + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct http_request req, prefix;
	char out[64];
	int r = http_parse_request(buf, size, &req);

	if (r < 0) {
		if (!req.error || !*req.error)
			abort();
		if (r != -EBADMSG && r != -E2BIG && r != -EFBIG && r != -ENOSYS && r != -EPROTONOSUPPORT)
			abort();
		http_error_status(r);
	} else if (r > 0) {
		if ((size_t)r > size || r > HTTP_HEAD_MAX || req.content_length > HTTP_BODY_MAX)
			abort();
		inside(req.method, req.method_len, buf, (size_t)r);
		inside(req.path, req.path_len, buf, (size_t)r);
		inside(req.query, req.query_len, buf, (size_t)r);
		if (!req.method_len || !req.path_len || req.path[0] != '/' || req.minor > 1)
			abort();
		/* the server parses partial heads: one byte short is never complete */
		if (http_parse_request(buf, (size_t)r - 1, &prefix) > 0)
			abort();
		http_query_arg(req.query, req.query_len, "level", out, sizeof(out));
		http_query_arg(req.query, req.query_len, "", out, 4);
	} else if (size >= HTTP_HEAD_MAX) {
		abort(); /* a head that can never complete must be refused */
	}
	http_query_arg(buf, size, "a b", out, sizeof(out));
	return 0;
}
