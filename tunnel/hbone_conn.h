/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HBONE connection: TLS + an nghttp2 session on the tunnel loop (the
 * contract for users is hbone.h; this header is internal to the HBONE
 * modules: hbone_conn.c, hbone_stream.c, hbone_server.c, hbone_pool.c).
 *
 * Re-entrancy: nghttp2 forbids nghttp2_session_send/mem_recv from inside
 * its own callbacks, and user callbacks may run deep inside them. Every
 * entry point therefore brackets its work with hbone_conn_enter() /
 * hbone_conn_leave(): only the outermost leave pumps output
 * (nghttp2_session_send + SSL_write) and only the outermost leave frees a
 * connection marked dead (hbone_conn_kill() only marks it). Threads: a
 * connection and its streams are touched on their loop's thread only (or
 * with that loop's worker isolated, tunnel/workers.h).
 */
#ifndef WARREN_HBONE_CONN_H
#define WARREN_HBONE_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "tunnel/hbone.h"
#include "tunnel/loop.h"
#include "tunnel/tls.h"

enum hbone_conn_role { HBONE_ROLE_CLIENT, HBONE_ROLE_SERVER };

struct hbone_conn {
	unsigned magic;
	struct hbone_conn *prev, *next; /* pool list */
	struct hbone_pool *pool;
	char *pool_key;
	char pool_dst[64];       /* a pooled dial's destination, for its backoff */
	struct loop *l;
	enum hbone_conn_role role;
	bool mem;                /* memory transport: no fd, no TLS */
	bool opened;             /* the TLS handshake completed */
	enum hbone_conn_state state;
	int fd;
	uint32_t events;
	bool fd_reg;
	SSL *ssl;
	enum tls_io hs_want;
	nghttp2_session *h2;
	struct hbone_opts o;
	uint8_t *out;
	size_t out_cap;          /* out's size: 32 KiB doubling up to 1 MiB */
	size_t out_off, out_len; /* pending output is out[out_off, out_off+out_len) */
	struct hbone_stream *streams;
	unsigned live;           /* streams not yet done */
	uint64_t streams_total;
	struct loop_timer *ping_timer, *idle_timer, *connect_timer;
	struct loop_timer *flush_timer; /* output pump at the end of this loop round */
	struct loop_timer *trim_timer;  /* malloc_trim after a burst */
	struct loop_timer *goaway_timer; /* server drain: the final GOAWAY */
	bool goaway_pending;     /* server drain asked before the handshake ended */
	bool pump_now;           /* conn_flush_cb: hbone_conn_leave pumps instead of deferring */
	bool connect_queued;     /* client: a CONNECT submitted since the last read (conn_read) */
	uint64_t ping_sent_ms, pings_sent, pings_acked;
	bool ping_outstanding;
	uint64_t created_ms, idle_since_ms;
	uint64_t bytes_in, bytes_out;
	char peer_id[SPIFFE_ID_MAX];
	char reason[256];
	int busy;
	bool dead, destroyed;
	bool hold;               /* memory transport: freed only by hbone_conn_abort */
	bool draining;           /* pool: no new streams; closed when the last one ends */
	hbone_conn_done_cb done_cb;
	void *done_ctx;
	struct hbone_server_cbs scbs;
};

void hbone_conn_enter(struct hbone_conn *c);
void hbone_conn_leave(struct hbone_conn *c);
/* Marks the connection dead with a reason (the first one stays); freed by
 * the outermost hbone_conn_leave(). */
void hbone_conn_kill(struct hbone_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A stream (or the connection) ended a burst: trim memory in a second. */
void hbone_conn_trim_soon(struct hbone_conn *c);
/* The connection has no live stream: start its idle timer (client). */
void hbone_conn_arm_idle(struct hbone_conn *c);
/* The stream with HTTP/2 id id, NULL if none. */
struct hbone_stream *hbone_conn_stream(struct hbone_conn *c, int32_t id);
/* Registers or updates the connection socket's epoll interest. */
void hbone_conn_set_interest(struct hbone_conn *c);
/* TCP connect / TLS handshake deadline (ctx = the connection). */
void hbone_conn_connect_timeout_cb(struct loop *l, void *ctx);
/* A connection of role on fd (-1: memory transport), with opts (NULL =
 * defaults). 0, -EINVAL (bad options), -ENOMEM; fd is not closed. */
int hbone_conn_new(struct loop *l, enum hbone_conn_role role, int fd,
		   const struct hbone_opts *opts, struct hbone_conn **out);
/* Frees a connection that never ran (constructor failure paths); closes fd. */
void hbone_conn_discard(struct hbone_conn *c);

#endif
