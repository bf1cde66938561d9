/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/2 from the application (prior knowledge) and gRPC at the waypoint.
 *
 * A client stream (waypoint/conn.h) that starts with the HTTP/2 preface
 * gets one nghttp2 server session, sans-I/O: the stream's bytes are fed to
 * it from c->din and what it sends goes out through c->dout. Each client
 * stream is one request, decided like an HTTP/1.1 one (L7 policy: 403
 * "RBAC: access denied" on that stream, the connection stays usable;
 * HTTPRoute, weighted backends, timeouts with 504, header modifiers,
 * retries), logged and counted once when it closes. A gRPC request
 * (content-type application/grpc...) answered by the waypoint itself gets a
 * trailers-only gRPC response (grpc-status mapped from the HTTP status as
 * Envoy does) and is counted with request_protocol="grpc" and its
 * grpc_response_status.
 *
 * Upstream, a request goes to the chosen endpoint over an HTTP/2 client
 * session (prior knowledge) on an HBONE stream to the endpoint's 15008
 * (:authority podIP:targetPort); client streams to the same endpoint share
 * a session up to the smaller of its peer's SETTINGS_MAX_CONCURRENT_STREAMS
 * and WP_MAX_STREAMS, then another one is opened. An idle session stays
 * WP_IDLE_MS for the next request (at most WP_IDLE_MAX idle ones).
 *
 * Bounds: WP_MAX_STREAMS concurrent streams per client connection (more
 * are refused with REFUSED_STREAM), WPH2_FIELDS fields and WPH2_HEADER_LIST
 * bytes per header block (431 for a request, 502 for a response), a
 * stream window of WPH2_WIN both ways (no automatic WINDOW_UPDATE: window
 * comes back only when the other side took the bytes, so a stream buffers
 * at most WPH2_WIN each way, allocated when its first body byte comes).
 * Request and response trailers pass through; RST_STREAM from either side
 * is passed to the other; a protocol error on the client's connection is
 * answered by nghttp2 with GOAWAY and the connection closed.
 *
 * Single-threaded (the waypoint's loop). Nothing here runs inside another
 * session's callback: sends happen from wph2_run.
 */
#ifndef WARREN_WAYPOINT_H2_H
#define WARREN_WAYPOINT_H2_H

#include <stddef.h>
#include <stdint.h>

#include "waypoint/h2msg.h" /* WPH2_WIN, WPH2_FIELDS, WPH2_HEADER_LIST */

struct wp;
struct wp_conn;

/* c's first bytes (in c->din) are the preface: c becomes an HTTP/2
 * connection (c->st = S_H2). -ENOMEM (c unchanged) on failure. */
int wph2_start(struct wp_conn *c);
/* c's socket is ready: read, feed, send. c may be freed. */
void wph2_pump(struct wp_conn *c);
/* c is being freed: every stream of it is reset upstream. */
void wph2_conn_free(struct wp_conn *c);
/* Ends every upstream session (shutdown). */
void wph2_shutdown(struct wp *w);

/*
 * For the fuzz target and unit tests: a client connection's server
 * session, without a socket or a model, fed len bytes (the preface
 * first); every request is answered by the waypoint itself (503, or what
 * it refuses first: 400, 414, 431), nothing goes upstream. What the
 * session sends goes to out (up to cap bytes, *out_len; out may be
 * NULL). Returns 0, or -1 when the session ended the connection.
 * Not thread-safe (the output is kept in statics).
 */
int wph2_feed_local(const uint8_t *data, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif
