/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The waypoint's data path: HBONE in, policy, HBONE out.
 *
 * Each inbound HBONE CONNECT stream (tunnel/hbone.h server, TLS 1.3
 * mutual, ALPN h2, at most WP_MAX_STREAMS streams per connection; the
 * peer's SPIFFE identity is the source principal) names its destination
 * in :authority: a Service VIP:port served by this waypoint, or (for a
 * workload waypoint) a pod IP:port bound to it; anything else gets 404.
 * The stream is accepted onto one end of a socketpair; the proxy owns
 * the other end.
 *
 * HTTP ports (a Service port named http, http-*, http2*, grpc*, or with
 * appProtocol http): requests are read with waypoint/http1.h, strictly, one
 * at a time (a pipelined request waits for the previous response), and
 * each is decided by the waypoint's policy set (model/authz.h,
 * authz_compile_waypoint): denied -> 403 "RBAC: access denied", the body
 * discarded, the connection kept; allowed -> routed when an HTTPRoute is
 * attached to the Service port (model/httproute.h: the matching rule's
 * weighted backend Service, its header modifiers applied to the heads and
 * its timeout armed, 504 at expiry; no rule matches -> 404, no usable
 * backend -> 500, the connection kept), then over HBONE (a pooled
 * connection, the waypoint's own identity, the endpoint's identity
 * expected) to a ready endpoint's 15008 with :authority podIP:targetPort,
 * endpoints taken round robin per request; the response is relayed by its
 * framing and the upstream stream closed (no upstream keep-alive yet). A
 * malformed request gets 400 (431, 501, 505, 405) and the connection is
 * closed; an upstream that closes before any response byte is retried (an
 * idempotent request without a body, twice at most, to the next
 * endpoint), else gets 503; one that answers garbage 502.
 * A 101 response turns the stream into a byte relay (WebSocket).
 * Other ports: decided once per connection with the L4 fields only, then
 * relayed as bytes.
 *
 * Models: each stream holds the model (waypoint/wmodel.h) its request was
 * decided with; at each new request head it takes w->model if that changed
 * (its destination looked up again: no longer bound here -> 404, closed).
 * A Service the model's source refused a route or policy for gets 503
 * (response flag NR) until it is fixed. Before the first model, streams
 * are refused with 503.
 *
 * One JSON access-log line per request (or TCP connection) on stdout, and
 * the same request counted in waypoint/stats.h (reporter="waypoint").
 * Single-threaded: everything runs on the loop it was made with.
 */
#ifndef WARREN_WAYPOINT_PROXY_H
#define WARREN_WAYPOINT_PROXY_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "model/authz.h"
#include "model/mesh.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"

#define WP_MAX_STREAMS 100

struct wmodel;
struct wp_stats;
struct wp_hconn;
struct wp_conn;

struct wp {
	struct loop *loop;
	struct wmodel *model;         /* the model in use (a reference; waypoint/wmodel.h) */
	const char *ns, *name;        /* the Gateway */
	const char *td;               /* trust domain */
	const char *id;               /* our SPIFFE ID */
	SSL_CTX *server_ctx, *client_ctx;
	struct hbone_pool *pool;
	struct wp_stats *stats;       /* waypoint/stats.h; may be NULL */
	struct wp_hconn *hconns;      /* live HBONE server connections */
	struct wp_conn *conns;        /* live streams */
	unsigned rr;
	uint64_t requests, denied, n_conns;
};

/* Serves one accepted TCP connection on 15008 (fd owned from now on). */
void wp_accept(struct wp *w, int fd, const struct sockaddr_storage *peer);
/* Ends every connection and stream (the loop has stopped). */
void wp_shutdown(struct wp *w);

#endif
