/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pieces of HTTP/2 messages the waypoint relays (waypoint/h2.h): header
 * blocks kept as nghttp2's reference-counted buffers (no copy), bounded to
 * WPH2_FIELDS fields and WPH2_HEADER_LIST bytes; a route's header modifier
 * applied as a block is sent on; a stream's bounded body buffer; gRPC's
 * status for an HTTP status the waypoint answers with. No I/O, no global
 * state; single-threaded per object.
 */
#ifndef WARREN_WAYPOINT_H2MSG_H
#define WARREN_WAYPOINT_H2MSG_H

#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "model/httproute.h"

#define WPH2_WIN         16384 /* a stream's window, both ways */
#define WPH2_FIELDS      100
#define WPH2_HEADER_LIST 16384

/* A header block kept as nghttp2's reference-counted buffers (no copy). */
struct h2m_hdrs {
	nghttp2_rcbuf *n[WPH2_FIELDS], *v[WPH2_FIELDS];
	unsigned count;
	size_t size;  /* RFC 9113 6.5.2: name + value + 32 per field */
	bool over;    /* past WPH2_FIELDS or WPH2_HEADER_LIST: dropped */
};

/* A bounded byte buffer (one direction of one stream's body): WPH2_WIN
 * bytes allocated with the first byte, grown (once) to RFC 9113's initial
 * window for what a peer may send before it took our SETTINGS. */
struct h2m_buf {
	char *p;
	size_t off, len, cap;
};

/* Drops b's fields (their references). */
void h2m_hdrs_clear(struct h2m_hdrs *b);
/* Keeps n: v (a reference each), or marks b over its bounds. */
void h2m_hdrs_add(struct h2m_hdrs *b, nghttp2_rcbuf *n, nghttp2_rcbuf *v);
/* The value of field name (lower case), or NULL. */
const char *h2m_hdrs_get(const struct h2m_hdrs *b, const char *name, size_t *len);
/* A request's regular field for policy and routes (ctx: its h2m_hdrs). */
const char *h2m_req_header(void *ctx, const char *name, size_t *len);
/* nv (room for WPH2_FIELDS + 32) gets b's fields with m (may be NULL)
 * applied, names lower-cased into names[names_cap]; returns the count. */
size_t h2m_nv(const struct h2m_hdrs *b, const struct mesh_route_hdrmod *m, nghttp2_nv *nv, char *names,
	      size_t names_cap);
/* In a data provider, at the body's end: EOF, then the trailers t (if it
 * has fields; may be NULL) instead of END_STREAM. */
void h2m_body_end(nghttp2_session *s, int32_t sid, uint32_t *flags, const struct h2m_hdrs *t);
/* Appends what fits of p (the count); takes up to n into out (the count).
 * The buffer is freed by its owner (free(b->p)). */
size_t h2m_buf_put(struct h2m_buf *b, const uint8_t *p, size_t n);
size_t h2m_buf_take(struct h2m_buf *b, uint8_t *out, size_t n);
/* gRPC's status for an HTTP status (Envoy's mapping). */
unsigned h2m_grpc_of(unsigned status);
/* A send callback's body: what fits of data in out (cap, *len used), or
 * NGHTTP2_ERR_WOULDBLOCK when full. */
ssize_t h2m_append(char *out, size_t cap, size_t *len, const uint8_t *data, size_t n);

#endif
