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
 * The protocol is the Service port's (appProtocol, else the name's prefix
 * up to '-', as Istio); a port with neither, and a pod-addressed stream, is
 * sniffed from its first bytes (an HTTP/1 method, or the HTTP/2 preface,
 * is HTTP), a client silent for WP_SNIFF_MS being relayed as TCP. A stream
 * that starts with the HTTP/2 preface is served by waypoint/h2.h.
 *
 * HTTP: requests are read with waypoint/http1.h, strictly, one
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
 * framing and the upstream stream parked for the next request (see
 * WP_IDLE_MAX) or closed. A malformed request gets 400 (431, 501, 505,
 * 405) and the connection is closed. Retries (twice at most, each to the
 * next endpoint), as Istio's default (connect-failure, refused-stream; no
 * status codes): a request whose upstream CONNECT failed (the endpoint's
 * tunnel could not reach the app, refused the stream, or could not be
 * dialled: the app never saw it) goes again whatever its method, if its
 * head and body fit in WP_RETRY_MAX; one whose stream was established but
 * closed before any response byte goes again only if it is idempotent
 * (RFC 9110 9.2.2). Otherwise 503; a response (a 503 included) is never
 * retried; one that is garbage gets 502.
 * A 101 response turns the stream into a byte relay (WebSocket).
 * TCP: decided once per connection with the L4 fields only, then relayed
 * as bytes.
 * Each stream's four WP_BUF buffers are allocated while it has bytes to
 * handle; an HTTP stream idle between requests holds none.
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
#include <stdio.h>

#include <openssl/ssl.h>

#include "model/authz.h"
#include "model/mesh.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"
#include "waypoint/conn.h"
#include "waypoint/upstream.h"

/* Serves one accepted TCP connection on 15008 (fd owned from now on). */
void wp_accept(struct wp *w, int fd, const struct sockaddr_storage *peer);
/* Ends every connection and stream (the loop has stopped). */
void wp_shutdown(struct wp *w);

#endif
