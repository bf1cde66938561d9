/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the waypoint's data path (waypoint/proxy.h): one client stream
 * (struct wp_conn, an HBONE stream the waypoint terminated) and what its
 * HTTP/1.1 side (proxy.c) and its HTTP/2 side (waypoint/h2.h) share: the
 * record of one request (access log, metrics), its policy decision, its
 * route and the endpoint it goes to; and struct wp, the data path's state
 * (waypoint/proxy.h's contract). Not for other modules but proxy.h's users.
 * Single-threaded (the waypoint's loop).
 */
#ifndef WARREN_WAYPOINT_CONN_H
#define WARREN_WAYPOINT_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "model/authz.h"
#include "model/httproute.h"
#include "model/mesh.h"
#include "tunnel/ca.h"
#include "tunnel/hbone.h"
#include "tunnel/loop.h"
#include "waypoint/http1.h"
#include "waypoint/stats.h"
#include "waypoint/upstream.h"

#define WP_BUF H1_HEAD_MAX /* each of a stream's four buffers */

#define WP_MAX_STREAMS 100

struct wmodel;
/* Upstream keep-alive (waypoint/upstream.h): after a complete keep-alive
 * response, the request's upstream HBONE stream is parked and taken again
 * by the next request to the same endpoint (podIP:targetPort, expected
 * identity) instead of a new CONNECT. */
#define WP_RETRY_MAX 16384
/* How long a stream on a port of no declared protocol may stay silent
 * before it is relayed as TCP (a server-first protocol). */
#define WP_SNIFF_MS 1000

struct wp_stats;
struct wp_hconn;
struct wp_conn;
struct wph2_conn;
struct wph2_up;

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
	struct wp_ups ups;            /* upstream streams; proxy.c fills it from the above */
	struct wph2_conn *h2conns;    /* HTTP/2 client connections (waypoint/h2.h) */
	struct wph2_up *h2ups;        /* HTTP/2 upstream sessions */
	unsigned h2_idle;             /* of which idle */
	FILE *access;                 /* the access log; NULL: stdout */
	unsigned rr;
	uint64_t requests, denied, n_conns;
};

enum wpc_state { S_SNIFF, S_HEAD, S_BODY, S_RESP, S_RESP_BODY, S_RAW, S_H2, S_CLOSING };

/* One request: what its access-log line and metrics say. */
struct wp_req {
	char method[16], path[256], policy[320], reason[520], route[300];
	const char *flag;         /* a response flag other than the status's, or NULL */
	const char *proto;        /* request_protocol: NULL "http", or "grpc" */
	char grpc_status[12];     /* gRPC: the response's grpc-status, or "" */
	unsigned status;
	uint32_t timeout_ms;      /* the route's; 0: none */
	const struct mesh_route_rule *rule; /* the matching route rule, or NULL */
	uint64_t req_bytes, resp_bytes, start_ms;
};

struct wph2_conn;

struct wp_conn {
	unsigned magic;
	struct wp *w;
	struct wp_conn *next, **pprev;
	struct wmodel *m;         /* the model of the request in flight (a reference) */
	int dfd, ufd;             /* ufd: up->fd while a request has one */
	struct wp_up *up;
	bool d_eof, u_eof, u_shut, http, up_keep, tcp_open;
	uint64_t tcp_rx, tcp_tx;  /* a TCP relay's bytes from and to the client */
	enum wpc_state st;
	char peer[SPIFFE_ID_MAX];
	struct sockaddr_storage src;
	const struct mesh_service *svc;
	const struct mesh_service_port *sp;
	const struct mesh_pod *pod;
	struct mesh_ip dst_ip;
	uint16_t dst_port;
	char authority[80];
	struct wph2_conn *h2;     /* S_H2: the HTTP/2 session (waypoint/h2.h) */
	/* the HTTP/1.1 request in flight */
	struct wp_req r;
	bool discard, req_keep, head_req, resp_keep, sent_resp, req_chunked, resp_chunked;
	uint64_t left;
	struct h1_chunked ch;
	/* a retryable request (head and body, up to WP_RETRY_MAX) and where it went */
	char *retry_head;
	size_t retry_len;
	unsigned retries;
	bool retry_idem;          /* idempotent: retried also after an established stream closed */
	const struct mesh_service *up_svc;
	const struct mesh_service_port *up_sp;
	struct loop_timer *timer; /* armed while a routed request with a timeout is upstream */
	/* the four buffers, one block of 4 * WP_BUF, allocated while the
	 * connection has bytes to handle and freed when an HTTP connection is
	 * idle between requests (wp_bufs_get, wp_bufs_put); NULL otherwise */
	char *din, *uin, *dout, *uout;
	size_t din_len, uin_len, dout_len, dout_off, uout_len, uout_off;
};

/* A request's header lookup, as model/authz.h and model/httproute.h take it. */
typedef const char *(*wp_header_fn)(void *ctx, const char *name, size_t *len);

uint64_t wp_now_ms(void);
/* The access-log line and the metrics of r (kind "http" or "tcp"). */
void wp_log_request(struct wp_conn *c, const struct wp_req *r, const char *kind);
/* r's L7 decision (method, path already in r; host NUL-terminated);
 * fills r->policy and r->reason. */
bool wp_authorize(struct wp_conn *c, struct wp_req *r, const char *host, wp_header_fn hdr, void *hctx);
/* r's route: see proxy.c. false with r->status (404, 500, 503) and r->reason. */
bool wp_route(struct wp_conn *c, struct wp_req *r, const char *path, size_t plen, const char *query, size_t qlen,
	      wp_header_fn hdr, void *hctx, const struct mesh_service **svc, const struct mesh_service_port **sp);

/* An endpoint a request goes to, and the strings d points to. */
struct wp_ep {
	struct wp_up_dest d;
	struct sockaddr_storage hb;
	char expect[SPIFFE_ID_MAX], authority[80];
};

/* Picks an endpoint of (svc, sp) (round robin), or c's pod-addressed
 * destination when svc is NULL. -errno with why on failure
 * (-EHOSTUNREACH: none to try). */
int wp_endpoint(struct wp_conn *c, const struct mesh_service *svc, const struct mesh_service_port *svp,
		struct wp_ep *e, char *why, size_t whylen);
/* The loop's callbacks of the upstream side (main fills w). */
void wp_ups_sync(struct wp *w);
/* A new request: take the current model if it changed (c->svc, c->sp,
 * c->pod follow it). false when the destination is no longer served here. */
bool wp_refresh(struct wp_conn *c);
/* Ends c (its streams, its socket). */
void wp_conn_close(struct wp_conn *c);
/* RFC 9110 9.2.2 */
bool wp_idempotent(const char *method);

#endif
