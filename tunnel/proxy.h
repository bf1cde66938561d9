/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capture and relay (proxy.c): a connection accepted on a pod's 15001 or
 * 15006, or an inbound HBONE stream, is one struct conn from accept to
 * close.
 *
 * Ownership: a struct conn is on its shard's list (p->conns) from
 * conn_new() until conn_free(), the one teardown (every end, failures
 * included); it owns its fds until relay_start() takes them, its route
 * (route.h) and its observability record. Functions documented as "c may
 * be gone on return" may free it.
 *
 * Threads: a connection is touched only by its pod shard's worker (the
 * policy re-check of a new snapshot included), and by the main thread with
 * the workers isolated (admin listing, scrape, pod removal).
 */
#ifndef WARREN_TUNNEL_PROXY_H
#define WARREN_TUNNEL_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tunnel/relay.h"
#include "tunnel/route.h"

#define CONN_MAGIC   0x434f4e4eu

struct pod;
struct pod_listener;
struct tunnel;
struct hsrv;
struct loop_timer;
struct conn_obs;
struct hbone_stream;
struct hbone_stream_stats;

enum conn_dir { CONN_OUTBOUND, CONN_INBOUND };

/* One accepted app connection: connecting upstream, then relaying. */
struct conn {
	unsigned magic;
	struct conn *prev, *next;
	struct pod *pod;
	enum conn_dir dir;
	struct sockaddr_storage src, dst;
	uint64_t start_ms;
	int app_fd, up_fd;           /* owned until handed to relay_start */
	struct loop_timer *timer;    /* connect timeout */
	struct relay *relay;         /* set once relaying */
	struct conn_obs *obs;        /* metrics.c: labels, byte accounting, access log */
	/* HBONE (mTLS mode). Outbound: the stream to the destination's 15008;
	 * inbound: the stream that arrived on this pod's 15008. */
	struct hbone_stream *hs;
	struct hsrv *hsrv;           /* inbound HBONE: the connection it came on */
	bool hbone;
	struct route route;          /* route.h: where it goes, who the peer is */
	bool hs_open;                /* the stream is relaying (200 sent or received) */
	bool opening;                /* inside hbone_pool_open (early done is recorded) */
	char *early_reason;          /* a stream that ended inside hbone_pool_open */
};

void proxy_accept(struct pod_listener *pl);
/* Abort every live connection of the pod (relays reset). */
void proxy_abort_all(struct pod *p, const char *reason);
/* "ip:port" / "[v6]:port". Returns buf. */
const char *sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len);

/* Live byte counters of a connection in relay_stats terms (a_to_b: from
 * the source to the destination), from its relay or its HBONE stream. */
void conn_get_stats(const struct conn *c, struct relay_stats *st);
/* Worker worker took a new snapshot (snap.h): points every route of its
 * shards into the new model (route_rebind), re-evaluates every live
 * inbound connection against the new policies and closes those now
 * denied. On that worker, at its safe point (workers.c). */
void proxy_snap_changed(struct tunnel *t, unsigned worker);

/* Shared with mtls.c (inbound HBONE streams are connections too). */
struct conn *conn_new(struct pod *p, enum conn_dir dir, int fd, const struct sockaddr_storage *src);
/* Connect up_fd to c->target without blocking, then relay (plain) or
 * accept the HBONE stream (inbound HBONE). c may be gone on return. */
void conn_connect(struct conn *c);
/* Inbound L4 policy: records the decision; on deny logs, closes (RST or
 * HBONE 401) and frees c. 0 allowed, -EACCES denied (c is gone). */
int conn_authorize(struct conn *c);
/* HBONE stream callbacks (ctx: outbound the conn, inbound the hsrv). */
void conn_hs_out_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st);
void conn_hs_in_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st);
/* Answer a pending inbound HBONE stream with status and free c. */
void conn_hs_reject(struct conn *c, int status, const char *why);
void conn_free(struct conn *c, const struct relay_stats *st, const char *reason);
void conn_fail(struct conn *c, const char *what, int err);
/* Non-blocking socket in the pod netns with SO_MARK, for c->target
 * (inbound: transparent, bound to c->src). fd or -errno, *what says which
 * step failed. */
int conn_upstream_socket(struct conn *c, const char **what);
void rst_close(int fd);
socklen_t ss_len(const struct sockaddr_storage *ss);
/* Same address (family and IP; ports ignored). */
bool ss_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* 15001, 15006 or 15008: never a connection's destination (self-call). */
bool port_is_tunnel(uint16_t port);
uint16_t ss_port(const struct sockaddr_storage *ss);
void ss_canonicalise(struct sockaddr_storage *ss);

#endif
