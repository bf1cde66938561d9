/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/2 message pieces (contract in waypoint/h2msg.h). */
#include "waypoint/h2msg.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void h2m_hdrs_clear(struct h2m_hdrs *b)
{
	for (unsigned i = 0; i < b->count; i++) {
		nghttp2_rcbuf_decref(b->n[i]);
		nghttp2_rcbuf_decref(b->v[i]);
	}
	b->count = 0;
	b->size = 0;
	b->over = false;
}

void h2m_hdrs_add(struct h2m_hdrs *b, nghttp2_rcbuf *n, nghttp2_rcbuf *v)
{
	size_t sz = nghttp2_rcbuf_get_buf(n).len + nghttp2_rcbuf_get_buf(v).len + 32;

	if (b->over || b->count >= WPH2_FIELDS || b->size + sz > WPH2_HEADER_LIST) {
		b->over = true;
		return;
	}
	nghttp2_rcbuf_incref(n);
	nghttp2_rcbuf_incref(v);
	b->n[b->count] = n;
	b->v[b->count++] = v;
	b->size += sz;
}

/* The value of field name (lower case), or NULL. */
const char *h2m_hdrs_get(const struct h2m_hdrs *b, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (unsigned i = 0; i < b->count; i++) {
		nghttp2_vec n = nghttp2_rcbuf_get_buf(b->n[i]);

		if (n.len == nl && !memcmp(n.base, name, nl)) {
			nghttp2_vec v = nghttp2_rcbuf_get_buf(b->v[i]);

			*len = v.len;
			return (const char *)v.base;
		}
	}
	return NULL;
}

/* For policy and routes: a regular field (pseudo-headers are not headers). */
const char *h2m_req_header(void *ctx, const char *name, size_t *len)
{
	return name[0] == ':' ? NULL : h2m_hdrs_get(ctx, name, len);
}

static bool h2m_is(const struct mesh_route_hdrmod *m, const nghttp2_vec *n, bool set_too)
{
	for (size_t i = 0; i < m->n_remove; i++)
		if (strlen(m->remove[i]) == n->len && !strncasecmp(m->remove[i], (const char *)n->base, n->len))
			return true;
	for (size_t i = 0; set_too && i < m->n_set; i++)
		if (strlen(m->set[i].name) == n->len && !strncasecmp(m->set[i].name, (const char *)n->base, n->len))
			return true;
	return false;
}

/* nv gets b's fields with the route's modifier applied (names lower-cased
 * into names[]); returns the count. */
size_t h2m_nv(const struct h2m_hdrs *b, const struct mesh_route_hdrmod *m, nghttp2_nv *nv,
		      char *names, size_t names_cap)
{
	size_t k = 0, used = 0;

	for (unsigned i = 0; i < b->count; i++) {
		nghttp2_vec n = nghttp2_rcbuf_get_buf(b->n[i]), v = nghttp2_rcbuf_get_buf(b->v[i]);

		if (m && n.len && n.base[0] != ':' && h2m_is(m, &n, true))
			continue;
		nv[k++] = (nghttp2_nv){ n.base, v.base, n.len, v.len, NGHTTP2_NV_FLAG_NONE };
	}
	for (int pass = 0; m && pass < 2; pass++) {
		const struct mesh_route_kv *kv = pass ? m->add : m->set;
		size_t nkv = pass ? m->n_add : m->n_set;

		for (size_t i = 0; i < nkv && k < WPH2_FIELDS + 32; i++) {
			size_t nl = strlen(kv[i].name);

			if (used + nl > names_cap)
				break;
			for (size_t j = 0; j < nl; j++)
				names[used + j] = (char)(kv[i].name[j] >= 'A' && kv[i].name[j] <= 'Z' ? kv[i].name[j] + 32 :
											  kv[i].name[j]);
			nv[k++] = (nghttp2_nv){ (uint8_t *)names + used, (uint8_t *)kv[i].value, nl, strlen(kv[i].value),
						NGHTTP2_NV_FLAG_NONE };
			used += nl;
		}
	}
	return k;
}

/* A body's end, in a data provider: the trailers t (if any fields) go
 * after it, else END_STREAM. */
void h2m_body_end(nghttp2_session *s, int32_t sid, uint32_t *flags, const struct h2m_hdrs *t)
{
	*flags |= NGHTTP2_DATA_FLAG_EOF;
	if (t && t->count) {
		nghttp2_nv nv[WPH2_FIELDS + 32];
		char names[8];
		size_t k = h2m_nv(t, NULL, nv, names, sizeof(names));

		if (!nghttp2_submit_trailer(s, sid, nv, k))
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
	}
}

size_t h2m_buf_put(struct h2m_buf *b, const uint8_t *p, size_t n)
{
	if (!b->p && !(b->p = malloc(WPH2_WIN)))
		return 0;
	if (!b->cap)
		b->cap = WPH2_WIN;
	if (b->off && b->off + b->len + n > b->cap) {
		memmove(b->p, b->p + b->off, b->len);
		b->off = 0;
	}
	if (b->len + n > b->cap && b->cap < NGHTTP2_INITIAL_WINDOW_SIZE) {
		char *np = realloc(b->p, NGHTTP2_INITIAL_WINDOW_SIZE);

		if (np) {
			b->p = np;
			b->cap = NGHTTP2_INITIAL_WINDOW_SIZE;
		}
	}
	if (n > b->cap - b->off - b->len)
		n = b->cap - b->off - b->len;
	memcpy(b->p + b->off + b->len, p, n);
	b->len += n;
	return n;
}

size_t h2m_buf_take(struct h2m_buf *b, uint8_t *out, size_t n)
{
	if (n > b->len)
		n = b->len;
	if (n)
		memcpy(out, b->p + b->off, n);
	b->off += n;
	b->len -= n;
	if (!b->len)
		b->off = 0;
	return n;
}

/* gRPC's status for an HTTP status the waypoint answers with (Envoy's mapping). */
unsigned h2m_grpc_of(unsigned status)
{
	switch (status) {
	case 400: return 13; /* INTERNAL */
	case 401: return 16; /* UNAUTHENTICATED */
	case 403: return 7;  /* PERMISSION_DENIED */
	case 404: return 12; /* UNIMPLEMENTED */
	case 429: case 502: case 503: case 504: return 14; /* UNAVAILABLE */
	default: return 2;   /* UNKNOWN */
	}
}

/* A session's send callback: what fits in out (cap bytes, *len used). */
ssize_t h2m_append(char *out, size_t cap, size_t *len, const uint8_t *data, size_t n)
{
	size_t room = cap - *len;

	if (!room)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (n > room)
		n = room;
	memcpy(out + *len, data, n);
	*len += n;
	return (ssize_t)n;
}
