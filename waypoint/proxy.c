/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's data path (contract in waypoint/proxy.h). */
#include "waypoint/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "conf/warren.h"
#include "model/httproute.h"
#include "model/waypoint.h"
#include "tunnel/ca.h"
#include "waypoint/conn.h"
#include "waypoint/h2.h"
#include "waypoint/http1.h"
#include "waypoint/proto.h"
#include "waypoint/stats.h"
#include "waypoint/wmodel.h"

#define WPC_MAGIC 0x77706363u /* "wpcc" */

/* One HBONE connection: the peer address for every stream on it. */
struct wp_hconn {
	struct wp *w;
	struct hbone_conn *hc;
	struct wp_hconn *next, **pprev;
	struct sockaddr_storage peer;
};

uint64_t wp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool wp_ss_ip(const struct sockaddr_storage *ss, struct mesh_ip *ip)
{
	if (ss->ss_family == AF_INET) {
		ip->family = AF_INET;
		ip->addr.v4 = ((const struct sockaddr_in *)ss)->sin_addr;
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		ip->family = AF_INET6;
		ip->addr.v6 = ((const struct sockaddr_in6 *)ss)->sin6_addr;
		return true;
	}
	return false;
}

static void wp_timer_stop(struct wp_conn *c)
{
	if (c->timer)
		loop_timer_cancel(c->w->loop, c->timer);
	c->timer = NULL;
}

/* The metric labels of a request, and the strings they point to that are
 * not c's or the model's. */
struct wp_lbuf {
	struct wp_stats_labels l;
	struct spiffe_id sid;
	char host[320];
};

/* Fills b->l for c's request (kind "http" or "tcp"). */
static void wp_labels(const struct wp_conn *c, const struct wp_req *r, const char *kind, struct wp_lbuf *b)
{
	struct wp_stats_labels *l = &b->l;
	struct mesh_ip ip;
	const struct mesh_pod *sp = c->m && wp_ss_ip(&c->src, &ip) ? mesh_find_pod_by_ip(c->m->mesh, &ip) : NULL;
	bool tcp = !strcmp(kind, "tcp");

	*l = (struct wp_stats_labels){
		.source_principal = c->peer, .request_protocol = !tcp && r->proto ? r->proto : kind,
		.response_code = tcp ? 0 : r->status,
		.response_flags = r->flag ? r->flag : r->status == 503 ? "UF" : r->status == 502 ? "UPE" : r->status == 504 ? "UT" : "-",
		.grpc_response_status = !tcp && r->proto && !strcmp(r->proto, "grpc") ? r->grpc_status : NULL,
		.destination_service_name = c->svc ? c->svc->name : NULL,
		.destination_service_namespace = c->svc ? c->svc->namespace : c->pod ? c->pod->namespace : NULL,
		.destination_workload = c->pod ? c->pod->name : NULL,
	};
	if (c->peer[0] && !spiffe_id_parse(c->peer, &b->sid))
		l->source_namespace = b->sid.ns;
	if (sp)
		l->source_workload = mesh_label(&sp->labels, "app") ? mesh_label(&sp->labels, "app") : sp->name;
	if (c->svc) {
		snprintf(b->host, sizeof(b->host), "%s.%s.svc.cluster.local", c->svc->name, c->svc->namespace);
		l->destination_service = b->host;
	}
}

void wp_log_request(struct wp_conn *c, const struct wp_req *r, const char *kind)
{
	char src[INET6_ADDRSTRLEN] = "", tbuf[32];
	struct mesh_ip ip;
	time_t now = time(NULL);
	json_t *o;
	char *line;

	if (wp_ss_ip(&c->src, &ip))
		mesh_ip_str(&ip, src, sizeof(src));
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:I}", "time", tbuf,
		      "scope", "access", "reporter", "waypoint", "protocol", c->h2 ? "http2" : kind, "src.addr", src,
		      "src.identity", c->peer, "authority", c->authority, "method", r->method, "path",
		      r->path, "response_code", (int)r->status, "policy", r->policy, "reason", r->reason,
		      "route", r->route[0] ? r->route : "-", "duration_ms", (json_int_t)(wp_now_ms() - r->start_ms),
		      "request_bytes", (json_int_t)r->req_bytes, "response_bytes", (json_int_t)r->resp_bytes);
	if (o && r->proto && !strcmp(r->proto, "grpc"))
		json_object_set_new(o, "grpc_status", json_string(r->grpc_status));
	if (c->w->stats) {
		struct wp_lbuf b;

		wp_labels(c, r, kind, &b);
		if (!strcmp(kind, "tcp")) {
			wp_stats_tcp(c->w->stats, &b.l, false, 0, 0);
			c->tcp_open = true;
		} else {
			wp_stats_request(c->w->stats, &b.l, wp_now_ms() - r->start_ms, r->req_bytes, r->resp_bytes);
		}
	}
	line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (line) {
		FILE *f = c->w->access ? c->w->access : stdout;

		fprintf(f, "%s\n", line);
		fflush(f);
	}
	free(line);
	json_decref(o);
}

/* The HTTP/1.1 request (or TCP relay) in flight has ended. */
static void wp_access(struct wp_conn *c, const char *kind)
{
	wp_timer_stop(c);
	free(c->retry_head);
	c->retry_head = NULL;
	wp_log_request(c, &c->r, kind);
}

static void wp_upstream_close(struct wp_conn *c);
static void wp_conn_free(struct wp_conn *c);

void wp_conn_close(struct wp_conn *c)
{
	wp_conn_free(c);
}

static void wp_conn_free(struct wp_conn *c)
{
	CHECK_OBJ(c, WPC_MAGIC);
	wph2_conn_free(c);
	wp_timer_stop(c);
	free(c->retry_head);
	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
	}
	if (c->dfd >= 0) {
		loop_del(c->w->loop, c->dfd);
		close(c->dfd);
	}
	wp_upstream_close(c);
	free(c->din);
	if (c->tcp_open && c->w->stats) {
		struct wp_lbuf b;

		wp_labels(c, &c->r, "tcp", &b);
		wp_stats_tcp(c->w->stats, &b.l, true, c->tcp_tx, c->tcp_rx);
	}
	wmodel_unref(c->m);
	c->magic = 0;
	free(c);
}

static bool wp_bufs_get(struct wp_conn *c)
{
	if (c->din)
		return true;
	c->din = malloc(4 * WP_BUF);
	if (!c->din)
		return false;
	c->uin = c->din + WP_BUF;
	c->dout = c->uin + WP_BUF;
	c->uout = c->dout + WP_BUF;
	return true;
}

/* An HTTP connection between requests holds no buffer. */
static void wp_bufs_put(struct wp_conn *c)
{
	if (!c->din || !c->http || c->st != S_HEAD || c->din_len || c->dout_len || c->uin_len || c->uout_len ||
	    c->ufd >= 0)
		return;
	free(c->din);
	c->din = c->uin = c->dout = c->uout = NULL;
}

static void wp_upstream_close(struct wp_conn *c)
{
	if (c->up)
		wp_up_release(c->up);
	c->up = NULL;
	c->ufd = -1;
	c->u_eof = c->u_shut = false;
	c->uin_len = c->uout_len = c->uout_off = 0;
}

/* The response ended cleanly and both sides keep the connection: park the
 * request's upstream stream for the next request to that endpoint. */
static void wp_upstream_park(struct wp_conn *c)
{
	if (!c->up || !c->up_keep || c->u_eof || c->uin_len || c->uout_len) {
		wp_upstream_close(c);
		return;
	}
	wp_up_park(c->up); /* or released */
	c->up = NULL;
	wp_upstream_close(c);
}

/* Queues a local response (it always fits: dout is empty when we answer). */
static void wp_local(struct wp_conn *c, unsigned status, const char *phrase, const char *body,
		     bool close_after)
{
	int n = snprintf(c->dout + c->dout_len, WP_BUF - c->dout_len,
			 "HTTP/1.1 %u %s\r\ncontent-type: text/plain\r\ncontent-length: %zu\r\n%s\r\n%s",
			 status, phrase, strlen(body), close_after ? "connection: close\r\n" : "", body);

	if (n > 0 && (size_t)n < WP_BUF - c->dout_len) {
		c->dout_len += (size_t)n;
		c->r.resp_bytes += (size_t)n;
	}
	c->r.status = status;
	c->sent_resp = true;
}

static void wp_fail_request(struct wp_conn *c, unsigned status, const char *phrase, const char *why)
{
	char body[300];

	snprintf(body, sizeof(body), "%s\n", why);
	snprintf(c->r.reason, sizeof(c->r.reason), "%s", why);
	wp_local(c, status, phrase, body, true);
	wp_access(c, "http");
	c->st = S_CLOSING;
}

/* ---- upstream ---- */

static void wp_io(struct loop *l, int fd, uint32_t events, void *ctx);

void wp_ups_sync(struct wp *w)
{
	w->ups.loop = w->loop; /* main fills w; the upstream side borrows the same */
	w->ups.pool = w->pool;
	w->ups.ctx = w->client_ctx;
	w->ups.id = w->id;
	w->ups.stats = w->stats;
}

int wp_endpoint(struct wp_conn *c, const struct mesh_service *svc, const struct mesh_service_port *svp,
		struct wp_ep *e, char *why, size_t whylen)
{
	struct wp *w = c->w;
	struct mesh_ep me = { 0 };
	const struct mesh_pod *ep;
	struct mesh_ip epip;
	uint16_t port;
	size_t n = 0, k, pos = 0;
	char a[INET6_ADDRSTRLEN];

	memset(&e->hb, 0, sizeof(e->hb));
	e->d = (struct wp_up_dest){ .hbone = (const struct sockaddr *)&e->hb, .authority = e->authority,
				    .expect = e->expect, .client = (const struct sockaddr *)&c->src };
	if (svc) {
		while (mesh_service_next_endpoint(c->m->mesh, svc, svp, c->dst_ip.family, &pos, &me))
			n++;
		if (!n) {
			snprintf(why, whylen, "no ready endpoint of Service %s/%s", svc->namespace, svc->name);
			return -EHOSTUNREACH;
		}
		k = w->rr++ % n;
		pos = 0;
		while (mesh_service_next_endpoint(c->m->mesh, svc, svp, c->dst_ip.family, &pos, &me) && k--)
			;
		ep = me.pod;
		epip = me.ip;
		port = me.port;
	} else {
		ep = c->pod;
		epip = c->dst_ip;
		port = c->dst_port;
	}
	if (!ep) {
		snprintf(why, whylen, "the endpoint is outside the mesh (no HBONE)");
		return -EHOSTUNREACH;
	}
	if (spiffe_id_format(e->expect, sizeof(e->expect), w->td, ep->namespace, ep->service_account) < 0) {
		snprintf(why, whylen, "endpoint %s/%s has no valid identity", ep->namespace, ep->name);
		return -EINVAL;
	}
	mesh_ip_str(&epip, a, sizeof(a));
	snprintf(e->authority, sizeof(e->authority), epip.family == AF_INET6 ? "[%s]:%u" : "%s:%u", a, port);
	if (epip.family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&e->hb;

		s4->sin_family = AF_INET;
		s4->sin_addr = epip.addr.v4;
		s4->sin_port = htons(PORT_INBOUND_HBONE);
		e->d.hbone_len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->hb;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = epip.addr.v6;
		s6->sin6_port = htons(PORT_INBOUND_HBONE);
		e->d.hbone_len = sizeof(*s6);
	}
	return 0;
}

/* Picks an endpoint (wp_endpoint) and opens an HBONE stream to it. */
static int wp_upstream_open(struct wp_conn *c, const struct mesh_service *svc,
			    const struct mesh_service_port *svp, char *why, size_t whylen)
{
	struct wp_ep e;
	bool reused;
	int ret = wp_endpoint(c, svc, svp, &e, why, whylen);

	if (ret < 0)
		return ret;
	c->up_keep = false;
	wp_ups_sync(c->w);
	c->up = wp_up_open(&c->w->ups, &e.d, wp_io, c, &reused, &ret, why, whylen);
	if (!c->up)
		return ret;
	c->ufd = c->up->fd;
	c->u_eof = false;
	log_debug("request of %s to %s: upstream %s (expecting %s) on %s", c->peer, c->authority, e.authority,
		  e.expect, reused ? "a parked stream" : "a new stream");
	return 0;
}

/* ---- policy ---- */

struct wp_hdrctx {
	const struct h1_request *rq;
	char buf[512];
};

static const char *wp_header(void *ctx, const char *name, size_t *len)
{
	struct wp_hdrctx *h = ctx;
	const struct h1_field *f = h->rq ? h1_field(h->rq, name, NULL) : NULL; /* TCP: no headers */

	if (!f)
		return NULL;
	*len = f->value.n;
	return f->value.p;
}

/* An HTTP/1.1 request's decision (rq NULL: a TCP connection's). */
static bool wp_authorize_h1(struct wp_conn *c, const struct h1_request *rq)
{
	struct wp_hdrctx hc = { .rq = rq };
	char host[256];
	size_t hn = rq ? rq->authority.n : 0;

	if (hn >= sizeof(host))
		hn = sizeof(host) - 1;
	if (rq)
		memcpy(host, rq->authority.p, hn);
	host[hn] = '\0';
	return wp_authorize(c, &c->r, rq ? host : NULL, wp_header, &hc);
}

bool wp_authorize(struct wp_conn *c, struct wp_req *r, const char *host, wp_header_fn hdr, void *hctx)
{
	struct authz_request ar = {
		.conn = { .dst_ip = c->dst_ip, .dst_port = c->dst_port, .peer_identity = c->peer },
		.svc_namespace = c->svc ? c->svc->namespace : c->pod->namespace,
		.svc_name = c->svc ? c->svc->name : NULL,
		.method = r->method, .path = r->path, .host = host,
		.header = hdr, .header_ctx = hctx,
	};
	struct authz_decision d;

	if (!host)
		ar.host = ar.method = ar.path = NULL;
	wp_ss_ip(&c->src, &ar.conn.src_ip);
	authz_evaluate_request(c->m->authz, &ar, &d);
	snprintf(r->policy, sizeof(r->policy), "%s", d.policy);
	snprintf(r->reason, sizeof(r->reason), "%s", d.reason);
	if (d.audit[0])
		log_info("AUDIT policy %s matched %s %s of %s", d.audit, r->method, r->path, c->peer);
	return d.allow;
}

static void wp_pump(struct wp_conn *c);

/* The route's timeout expired with the request upstream: 504 if no
 * response has started (the connection then closes: the request body may
 * be half sent), else the response is cut and the connection closed. */
static void wp_timeout(struct loop *l, void *ctx)
{
	struct wp_conn *c = ctx;

	(void)l;
	CHECK_OBJ(c, WPC_MAGIC);
	c->timer = NULL;
	if (c->st != S_BODY && c->st != S_RESP && c->st != S_RESP_BODY)
		return;
	wp_upstream_close(c);
	if (!c->sent_resp) {
		char why[400];

		snprintf(why, sizeof(why), "upstream request timeout (%u ms, HTTPRoute %s)", c->r.timeout_ms, c->r.route);
		wp_fail_request(c, 504, "Gateway Timeout", why);
	} else {
		snprintf(c->r.reason, sizeof(c->r.reason), "upstream request timeout (%u ms) mid-response", c->r.timeout_ms);
		wp_access(c, "http");
		c->st = S_CLOSING;
	}
	wp_pump(c);
}

/* ---- routes (model/httproute.h) ---- */

static const struct mesh_service *wp_find_service(const struct mesh *m, const char *ns, const char *name)
{
	for (size_t i = 0; i < m->n_services; i++)
		if (!strcmp(m->services[i].name, name) && !strcmp(m->services[i].namespace, ns))
			return &m->services[i];
	return NULL;
}

/* Chooses where an allowed request goes: (*svc, *sp) unchanged when no
 * route is attached to the destination; the picked backend of the rule
 * that matches otherwise. false with c->r.status 404 (no rule matches, as
 * GAMMA says) or 500 (the rule has no usable backend) and c->r.reason set. */
bool wp_route(struct wp_conn *c, struct wp_req *r, const char *path, size_t plen, const char *query, size_t qlen,
	      wp_header_fn hdr, void *hctx, const struct mesh_service **svc, const struct mesh_service_port **sp)
{
	struct mesh_route_req mr = {
		.method = r->method, .path = path, .path_len = plen,
		.query = query, .query_len = qlen, .header = hdr, .ctx = hctx,
	};
	const struct mesh_httproute *route;
	const struct mesh_route_rule *rule;
	const struct mesh_route_backend *be;
	const struct mesh_service *bs;
	const char *refused = c->svc ? wmodel_refused(c->m, c->svc->namespace, c->svc->name) : NULL;

	if (refused) { /* fail closed until the object is fixed */
		r->status = 503;
		r->flag = "NR";
		snprintf(r->reason, sizeof(r->reason), "%s", refused);
		return false;
	}
	if (!c->svc || !mesh_service_routed(c->m->mesh, c->svc, c->dst_port))
		return true;
	rule = mesh_route_select(c->m->mesh, c->svc, c->dst_port, &mr, &route);
	if (!rule) {
		r->status = 404;
		snprintf(r->reason, sizeof(r->reason), "no HTTPRoute rule of Service %s/%s port %u matches",
			 c->svc->namespace, c->svc->name, c->dst_port);
		return false;
	}
	snprintf(r->route, sizeof(r->route), "%s/%s", route->namespace, route->name);
	be = mesh_route_pick(rule, arc4random());
	bs = be ? wp_find_service(c->m->mesh, route->namespace, be->service) : NULL;
	r->status = 500;
	if (!be) {
		snprintf(r->reason, sizeof(r->reason), "HTTPRoute %s/%s: the matching rule has no backend with a weight",
			 route->namespace, route->name);
		return false;
	}
	if (!bs) {
		snprintf(r->reason, sizeof(r->reason), "HTTPRoute %s/%s: backend Service %s does not exist",
			 route->namespace, route->name, be->service);
		return false;
	}
	*sp = NULL;
	for (size_t i = 0; i < bs->n_ports; i++)
		if (bs->ports[i].port == be->port)
			*sp = &bs->ports[i];
	if (!*sp) {
		snprintf(r->reason, sizeof(r->reason), "HTTPRoute %s/%s: backend Service %s has no port %u",
			 route->namespace, route->name, be->service, be->port);
		return false;
	}
	*svc = bs;
	r->status = 0;
	r->rule = rule;
	r->timeout_ms = rule->timeout_ms;
	if (rule->backend_timeout_ms && (!r->timeout_ms || rule->backend_timeout_ms < r->timeout_ms))
		r->timeout_ms = rule->backend_timeout_ms;
	log_debug("request %s %s to %s: HTTPRoute %s/%s, backend %s:%u", r->method, r->path, c->authority,
		  route->namespace, route->name, be->service, be->port);
	return true;
}

/* ---- the state machine ---- */

#define WP_RETRIES 2

bool wp_idempotent(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "HEAD") || !strcmp(m, "OPTIONS") || !strcmp(m, "PUT") ||
	       !strcmp(m, "DELETE") || !strcmp(m, "TRACE");
}

static size_t wp_room(size_t len)
{
	return WP_BUF - len;
}

/* Moves up to *left body bytes (or a chunked body) from in to out (or
 * drops them). Returns -1 on a framing error, 1 when the body ended, 0
 * when more is needed. */
static int wp_move_body(struct wp_conn *c, char *in, size_t *in_len, char *out, size_t *out_len,
			bool chunked, bool drop)
{
	size_t n = *in_len, room = drop ? n : wp_room(*out_len);

	if (n > room)
		n = room;
	if (chunked) {
		long r;

		if (c->ch.done)
			return 1;
		r = h1_chunked_step(&c->ch, in, n, NULL);
		if (r < 0)
			return -1;
		n = (size_t)r;
	} else if (n > c->left) {
		n = (size_t)c->left;
	}
	if (!drop)
		memcpy(out + *out_len, in, n);
	if (!drop)
		*out_len += n;
	memmove(in, in + n, *in_len - n);
	*in_len -= n;
	if (!chunked)
		c->left -= n;
	return chunked ? c->ch.done : !c->left;
}

static void wp_copy_str(char *dst, size_t len, struct h1_str s)
{
	size_t n = s.n < len - 1 ? s.n : len - 1;

	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static bool wp_tcp_start(struct wp_conn *c);

/* Upgrade: h2c (RFC 7540 3.2, removed by RFC 9113)? */
static bool wp_h2c_upgrade(const struct h1_request *rq)
{
	const struct h1_field *f = h1_field(rq, "upgrade", NULL);

	for (size_t i = 0; f && i + 3 <= f->value.n; i++)
		if (!strncasecmp(f->value.p + i, "h2c", 3))
			return true;
	return false;
}

/* Keeps bytes of the request for a retry, as long as it fits. */
static void wp_retry_keep(struct wp_conn *c, const char *p, size_t n)
{
	char *nb;

	if (!c->retry_head || !n)
		return;
	if (c->retry_len + n > WP_RETRY_MAX || !(nb = realloc(c->retry_head, c->retry_len + n))) {
		free(c->retry_head); /* too large to hold: not retryable */
		c->retry_head = NULL;
		return;
	}
	memcpy(nb + c->retry_len, p, n);
	c->retry_head = nb;
	c->retry_len += n;
}

/* Opens the request's upstream stream, trying the next endpoint when
 * one cannot be opened at all (a dial in backoff: a connect failure). */
static int wp_upstream_open_retrying(struct wp_conn *c, const struct mesh_service *svc,
				     const struct mesh_service_port *svp, char *why, size_t whylen)
{
	int ret;

	while ((ret = wp_upstream_open(c, svc, svp, why, whylen)) < 0 && ret != -EHOSTUNREACH &&
	       c->retries < WP_RETRIES) {
		c->retries++;
		log_info("retry %u of %s %s to %s: %s", c->retries, c->r.method, c->r.path, c->authority, why);
	}
	return ret;
}

/* The upstream closed before any response byte: may the request go again?
 * Always when its CONNECT failed (the app never saw it: Istio's
 * connect-failure and refused-stream); after an established stream only
 * when it is idempotent. Either way only while it is held whole. */
static bool wp_retryable(const struct wp_conn *c)
{
	return c->retry_head && c->retries < WP_RETRIES && ((c->up && wp_up_connect_failed(c->up)) || c->retry_idem);
}

/* One step; true when something changed. */
static bool wp_step(struct wp_conn *c)
{
	struct h1_request rq;
	struct h1_response rs;
	const struct mesh_service *bsvc = c->svc;
	const struct mesh_service_port *bsp = c->sp;
	unsigned lstatus = 0;
	char why[300];
	int r;
	struct wp_hdrctx hc = { .rq = &rq };

	switch (c->st) {
	case S_SNIFF: {
		enum wp_proto p = wp_sniff(c->din, c->din_len);

		if (c->d_eof && !c->din_len) {
			c->st = S_CLOSING;
			return true;
		}
		if (p == WP_PROTO_SNIFF && !c->d_eof)
			return false; /* more bytes, or the timer, will decide */
		wp_timer_stop(c);
		c->http = p == WP_PROTO_HTTP;
		log_debug("stream of %s to %s: sniffed %s", c->peer, c->authority, c->http ? "HTTP" : "TCP");
		if (c->http)
			c->st = S_HEAD;
		else if (!wp_tcp_start(c))
			c->st = S_CLOSING;
		return true;
	}
	case S_HEAD:
		if (c->dout_len || !c->din_len)
			return false;
		if (c->din_len >= sizeof(WP_H2_PREFACE) - 1 && !memcmp(c->din, WP_H2_PREFACE, sizeof(WP_H2_PREFACE) - 1)) {
			/* HTTP/2 with prior knowledge (waypoint/h2.h) */
			if (wph2_start(c) < 0) {
				log_warn("out of memory for an HTTP/2 session of %s: closing its stream", c->peer);
				c->st = S_CLOSING;
			}
			return true;
		}
		r = h1_parse_head(c->din, c->din_len, &rq);
		if (r == 0)
			return false;
		c->r.start_ms = wp_now_ms();
		c->r.status = 0;
		c->sent_resp = false;
		c->r.req_bytes = r > 0 ? (uint64_t)r : 0;
		c->r.resp_bytes = 0;
		c->retries = 0;
		c->r.policy[0] = c->r.reason[0] = c->r.method[0] = c->r.path[0] = '\0';
		if (r < 0) {
			unsigned st = h1_error_status(r);

			c->w->requests++;
			wp_fail_request(c, st, st == 431 ? "Request Header Fields Too Large" :
					       st == 501 ? "Not Implemented" : st == 505 ? "HTTP Version Not Supported" :
					       st == 405 ? "Method Not Allowed" : "Bad Request", rq.error);
			return true;
		}
		c->w->requests++;
		wp_copy_str(c->r.method, sizeof(c->r.method), rq.method);
		wp_copy_str(c->r.path, sizeof(c->r.path), rq.path);
		c->r.flag = NULL;
		if (!wp_refresh(c)) {
			wp_fail_request(c, 404, "Not Found", "no longer a destination of this waypoint");
			return true;
		}
		bsvc = c->svc;
		bsp = c->sp;
		c->req_keep = rq.keep_alive;
		c->head_req = h1_str_ieq(rq.method, "HEAD");
		c->left = rq.content_length;
		h1_chunked_init(&c->ch);
		c->r.route[0] = '\0';
		c->r.timeout_ms = 0;
		c->r.rule = NULL;
		c->discard = !wp_authorize_h1(c, &rq);
		if (c->discard) {
			c->w->denied++;
			lstatus = 403;
		} else if (!wp_route(c, &c->r, rq.path.p, rq.path.n, rq.query.p, rq.query.n, wp_header, &hc, &bsvc,
				     &bsp)) {
			c->discard = true;
			lstatus = c->r.status;
		}
		if (c->discard) {
			/* the client waits for 100 before its body: do not take it */
			bool close_now = rq.expect_continue && rq.body != H1_BODY_NONE;

			wp_local(c, lstatus, lstatus == 403 ? "Forbidden" : lstatus == 404 ? "Not Found" :
					     lstatus == 503 ? "Service Unavailable" : "Internal Server Error",
				 lstatus == 403 ? "RBAC: access denied" : lstatus == 404 ? "no route matched\n" :
				 lstatus == 503 ? "route configuration refused\n" :
				 "route has no usable backend\n", close_now);
			wp_access(c, "http");
			if (close_now) {
				c->st = S_CLOSING;
				return true;
			}
		} else if (wp_upstream_open_retrying(c, bsvc, bsp, why, sizeof(why)) < 0) {
			wp_fail_request(c, 503, "Service Unavailable", why);
			return true;
		} else {
			if (c->r.timeout_ms)
				c->timer = loop_timer_add(c->w->loop, c->r.timeout_ms, wp_timeout, c);
			struct mesh_route_hdrmod mod = { 0 };
			const char **rm = NULL;

			if (c->r.rule)
				mod = c->r.rule->req_mod;
			if (wp_h2c_upgrade(&rq) && (rm = calloc(mod.n_remove + 2, sizeof(*rm)))) {
				/* HTTP/2 by Upgrade would turn the stream into bytes
				 * past the policy of each later request: not offered
				 * to the app (as Envoy, which drops h2c upgrades) */
				if (mod.n_remove)
					memcpy(rm, mod.remove, mod.n_remove * sizeof(*rm));
				rm[mod.n_remove] = "upgrade";
				rm[mod.n_remove + 1] = "http2-settings";
				mod.remove = rm;
				mod.n_remove += 2;
			} else if (wp_h2c_upgrade(&rq)) {
				wp_upstream_close(c);
				wp_fail_request(c, 503, "Service Unavailable", "out of memory");
				return true;
			}
			if (!mesh_route_hdrmod_empty(&mod)) {
				long n = mesh_route_rewrite_head(c->din, (size_t)r, &mod, c->uout, WP_BUF);

				free(rm);
				if (n < 0) {
					wp_upstream_close(c);
					wp_fail_request(c, 431, "Request Header Fields Too Large",
							"the request head is too large with the route's header modifier");
					return true;
				}
				c->uout_len = (size_t)n;
			} else {
				memcpy(c->uout, c->din, (size_t)r); /* r <= WP_BUF: the head as received */
				c->uout_len = (size_t)r;
			}
			c->up_svc = bsvc;
			c->up_sp = bsp;
			c->retry_idem = wp_idempotent(c->r.method);
			c->retry_len = 0;
			if (c->uout_len <= WP_RETRY_MAX && (c->retry_head = malloc(c->uout_len))) {
				memcpy(c->retry_head, c->uout, c->uout_len);
				c->retry_len = c->uout_len;
			}
		}
		memmove(c->din, c->din + r, c->din_len - (size_t)r);
		c->din_len -= (size_t)r;
		c->st = S_BODY;
		c->req_chunked = rq.body == H1_BODY_CHUNKED;
		c->left = rq.body == H1_BODY_LENGTH ? rq.content_length : 0;
		if (rq.body == H1_BODY_NONE)
			goto body_done;
		return true;
	case S_BODY:
		/* an interim response (100 Continue) goes to the client now: it
		 * may be waiting for it before it sends the body */
		if (!c->discard && c->uin_len && !c->dout_len &&
		    (r = h1_parse_response_head(c->uin, c->uin_len, c->head_req, &rs)) > 0 &&
		    rs.status >= 100 && rs.status < 200 && rs.status != 101) {
			memcpy(c->dout, c->uin, (size_t)r);
			c->dout_len = (size_t)r;
			c->r.resp_bytes += (size_t)r;
			memmove(c->uin, c->uin + r, c->uin_len - (size_t)r);
			c->uin_len -= (size_t)r;
			return true;
		}
		if (!c->discard && c->u_eof && !c->uin_len) {
			/* the upstream went away while we still send it the body */
			wp_upstream_close(c);
			wp_fail_request(c, 503, "Service Unavailable", "upstream connection closed during the request body");
			return true;
		}
		{
			size_t din0 = c->din_len, uout0 = c->uout_len;

			r = wp_move_body(c, c->din, &c->din_len, c->uout, &c->uout_len, c->req_chunked, c->discard);
			c->r.req_bytes += din0 - c->din_len;
			if (!c->discard)
				wp_retry_keep(c, c->uout + uout0, c->uout_len - uout0);
		}
		if (r < 0) {
			wp_upstream_close(c);
			snprintf(c->r.reason, sizeof(c->r.reason), "%s", c->ch.error);
			c->dout_len = 0; /* a 403 not yet sent would be followed by garbage */
			if (!c->sent_resp || c->discard)
				wp_local(c, 400, "Bad Request", "bad chunked body\n", true);
			c->st = S_CLOSING;
			return true;
		}
		if (!r)
			return false;
body_done:
		if (c->discard) {
			c->st = c->req_keep ? S_HEAD : S_CLOSING;
			return true;
		}
		c->st = S_RESP;
		return true;
	case S_RESP:
		if (c->dout_len)
			return false;
		r = c->uin_len ? h1_parse_response_head(c->uin, c->uin_len, c->head_req, &rs) : 0;
		if (r == 0) {
			if (c->u_eof && !c->uin_len && wp_retryable(c)) {
				/* closed before any response byte: goes again, to the next
				 * endpoint (wp_retryable says when) */
				const char *what = wp_up_connect_failed(c->up) ? "its CONNECT failed" :
									 "the upstream closed before a response";
				int st = c->up->status;

				wp_upstream_close(c);
				c->retries++;
				if (wp_upstream_open_retrying(c, c->up_svc, c->up_sp, why, sizeof(why)) == 0) {
					log_info("retry %u of %s %s to %s: %s (status %d)", c->retries, c->r.method,
						 c->r.path, c->authority, what, st);
					memcpy(c->uout, c->retry_head, c->retry_len);
					c->uout_len = c->retry_len;
					return true;
				}
			}
			if (c->u_eof) {
				wp_upstream_close(c);
				wp_fail_request(c, 503, "Service Unavailable",
						"upstream connection closed before a response (refused, reset or unreachable)");
				return true;
			}
			return false;
		}
		if (r < 0) {
			wp_upstream_close(c);
			wp_fail_request(c, 502, "Bad Gateway", rs.error);
			return true;
		}
		if (rs.status >= 200 && c->r.rule && !mesh_route_hdrmod_empty(&c->r.rule->resp_mod)) {
			long n = mesh_route_rewrite_head(c->uin, (size_t)r, &c->r.rule->resp_mod, c->dout, WP_BUF);

			if (n < 0) {
				wp_upstream_close(c);
				wp_fail_request(c, 502, "Bad Gateway",
						"the response head is too large with the route's header modifier");
				return true;
			}
			c->dout_len = (size_t)n;
		} else {
			memcpy(c->dout, c->uin, (size_t)r);
			c->dout_len = (size_t)r;
		}
		memmove(c->uin, c->uin + r, c->uin_len - (size_t)r);
		c->uin_len -= (size_t)r;
		c->r.resp_bytes += c->dout_len;
		c->r.status = rs.status;
		c->sent_resp = true;
		if (rs.status == 101) {
			wp_access(c, "http");
			c->st = S_RAW;
			return true;
		}
		if (rs.status < 200)
			return true; /* 100 Continue and friends: the final response follows */
		c->resp_keep = rs.keep_alive && c->req_keep;
		c->up_keep = c->resp_keep && !rs.until_close;
		h1_chunked_init(&c->ch);
		c->ch.done = rs.body != H1_BODY_CHUNKED;
		c->left = rs.until_close ? UINT64_MAX : rs.content_length;
		c->st = S_RESP_BODY;
		if (rs.body == H1_BODY_NONE && !rs.until_close)
			goto resp_done;
		c->resp_chunked = rs.body == H1_BODY_CHUNKED;
		return true;
	case S_RESP_BODY: {
		size_t dout0 = c->dout_len;

		r = wp_move_body(c, c->uin, &c->uin_len, c->dout, &c->dout_len, c->resp_chunked, false);
		c->r.resp_bytes += c->dout_len - dout0;
	}
		if (r < 0) {
			snprintf(c->r.reason, sizeof(c->r.reason), "upstream: %s", c->ch.error);
			c->st = S_CLOSING;
			return true;
		}
		if (!r) {
			if (c->u_eof && !c->uin_len) {
				/* until-close bodies end here; others were cut short */
				if (c->left != UINT64_MAX)
					snprintf(c->r.reason, sizeof(c->r.reason), "upstream closed mid-response");
				wp_access(c, "http");
				c->st = S_CLOSING;
				return true;
			}
			return false;
		}
resp_done:
		wp_access(c, "http");
		wp_upstream_park(c);
		c->st = c->resp_keep ? S_HEAD : S_CLOSING;
		return true;
	case S_RAW: {
		bool moved = false;
		size_t n = c->din_len < wp_room(c->uout_len) ? c->din_len : wp_room(c->uout_len);

		if (n) {
			memcpy(c->uout + c->uout_len, c->din, n);
			c->uout_len += n;
			c->tcp_rx += n;
			memmove(c->din, c->din + n, c->din_len - n);
			c->din_len -= n;
			moved = true;
		}
		n = c->uin_len < wp_room(c->dout_len) ? c->uin_len : wp_room(c->dout_len);
		if (n) {
			memcpy(c->dout + c->dout_len, c->uin, n);
			c->dout_len += n;
			c->tcp_tx += n;
			memmove(c->uin, c->uin + n, c->uin_len - n);
			c->uin_len -= n;
			moved = true;
		}
		if (c->ufd >= 0 && c->d_eof && !c->din_len && !c->uout_len && !c->u_shut) {
			shutdown(c->ufd, SHUT_WR); /* the client's half-close, passed on once */
			c->u_shut = true;
			moved = true;
		}
		if ((c->u_eof && !c->uin_len && !c->dout_len) || c->ufd < 0) {
			c->st = S_CLOSING;
			moved = true;
		}
		return moved;
	}
	case S_H2: /* wph2_pump's */
	case S_CLOSING:
		return false;
	}
	return false;
}

/* Writes what is pending; false on a fatal error. */
static bool wp_flush(int fd, char *buf, size_t *len, size_t *off)
{
	while (*off < *len) {
		ssize_t n = send(fd, buf + *off, *len - *off, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		*off += (size_t)n;
	}
	*len = *off = 0;
	return true;
}

/* Reads what fits; false on a fatal error. */
static bool wp_fill(int fd, char *buf, size_t *len, bool *eof)
{
	while (!*eof && *len < WP_BUF) {
		ssize_t n = read(fd, buf + *len, WP_BUF - *len);

		if (n == 0)
			*eof = true;
		else if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		else
			*len += (size_t)n;
	}
	return true;
}

static void wp_pump(struct wp_conn *c)
{
	if (!wp_bufs_get(c)) {
		log_warn("out of memory for the buffers of a stream from %s: closing it", c->peer);
		wp_conn_free(c);
		return;
	}
	for (int i = 0; i < 64; i++) {
		bool progress = false;
		size_t dl, ul, dol, uol;

		if (c->st == S_H2) {
			wph2_pump(c); /* may free c */
			return;
		}
		dl = c->din_len;
		ul = c->uin_len;
		dol = c->dout_len;
		uol = c->uout_len;

		if (!wp_flush(c->dfd, c->dout, &c->dout_len, &c->dout_off)) {
			wp_conn_free(c);
			return;
		}
		if (c->ufd >= 0 && !wp_flush(c->ufd, c->uout, &c->uout_len, &c->uout_off))
			c->u_eof = true; /* reset: handled by the state machine */
		if (!wp_fill(c->dfd, c->din, &c->din_len, &c->d_eof)) {
			wp_conn_free(c);
			return;
		}
		if (c->ufd >= 0 && !wp_fill(c->ufd, c->uin, &c->uin_len, &c->u_eof))
			c->u_eof = true;
		while (wp_step(c))
			progress = true;
		if (c->st == S_CLOSING) {
			wp_flush(c->dfd, c->dout, &c->dout_len, &c->dout_off);
			if (!c->dout_len || c->d_eof) {
				wp_conn_free(c);
				return;
			}
		} else if (c->d_eof && (c->st == S_HEAD || c->st == S_SNIFF) && !c->din_len && !c->dout_len) {
			wp_conn_free(c);
			return;
		}
		progress |= dl != c->din_len || ul != c->uin_len || dol != c->dout_len ||
			    uol != c->uout_len;
		if (!progress)
			break;
	}
	wp_bufs_put(c);
	loop_mod(c->w->loop, c->dfd,
		 (c->din_len < WP_BUF && !c->d_eof && c->st != S_CLOSING ? EPOLLIN : 0) |
			 (c->dout_len ? EPOLLOUT : 0));
	if (c->ufd >= 0)
		loop_mod(c->w->loop, c->ufd,
			 (c->uin_len < WP_BUF && !c->u_eof ? EPOLLIN : 0) | (c->uout_len ? EPOLLOUT : 0));
}

static void wp_io(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct wp_conn *c = ctx;

	(void)l;
	(void)fd;
	(void)events;
	CHECK_OBJ(c, WPC_MAGIC);
	wp_pump(c);
}

/* ---- HBONE server side ---- */

/* TCP: one L4 decision, then bytes. false (logged): c is to be closed. */
static bool wp_tcp_start(struct wp_conn *c)
{
	char why[300];

	snprintf(c->r.method, sizeof(c->r.method), "-");
	snprintf(c->r.path, sizeof(c->r.path), "-");
	c->r.start_ms = wp_now_ms();
	if (!wp_authorize_h1(c, NULL)) {
		c->r.status = 403;
		wp_access(c, "tcp");
		return false;
	}
	if (wp_upstream_open(c, c->svc, c->sp, why, sizeof(why)) < 0) {
		snprintf(c->r.reason, sizeof(c->r.reason), "%s", why);
		c->r.status = 503; /* in the access log; the TCP metrics say UF */
		wp_access(c, "tcp");
		return false;
	}
	wp_access(c, "tcp");
	c->st = S_RAW;
	return true;
}

/* Nothing came within WP_SNIFF_MS: a server-first protocol, relayed as TCP. */
static void wp_sniff_timeout(struct loop *l, void *ctx)
{
	struct wp_conn *c = ctx;

	(void)l;
	CHECK_OBJ(c, WPC_MAGIC);
	c->timer = NULL;
	if (c->st != S_SNIFF)
		return;
	log_debug("stream of %s to %s: nothing in %d ms, relayed as TCP", c->peer, c->authority, WP_SNIFF_MS);
	if (!wp_tcp_start(c)) {
		wp_conn_free(c);
		return;
	}
	wp_pump(c);
}

/* Looks the stream's destination up in c->m: true when it is a Service
 * port or a pod bound to this waypoint (no open relay). */
static bool wp_resolve(struct wp_conn *c)
{
	const struct mesh *m = c->m->mesh;
	struct mesh_wp_binding b = { .state = MESH_WP_NONE };

	c->sp = NULL;
	c->pod = NULL;
	c->svc = mesh_find_service_by_vip(m, &c->dst_ip);
	if (c->svc) {
		for (size_t i = 0; i < c->svc->n_ports; i++)
			if (c->svc->ports[i].port == c->dst_port)
				c->sp = &c->svc->ports[i];
		mesh_service_waypoint(m, c->svc, &b);
	} else {
		c->pod = mesh_find_pod_by_ip(m, &c->dst_ip);
		if (c->pod)
			mesh_pod_waypoint(m, c->pod, &b);
	}
	return (c->svc || c->pod) && (!c->svc || c->sp) && b.state != MESH_WP_NONE &&
	       !strcmp(b.ns, c->w->ns) && !strcmp(b.name, c->w->name);
}

/* A new request head: take the current model if it changed. false when the
 * destination is no longer served here (the stream is then closing). */
bool wp_refresh(struct wp_conn *c)
{
	bool was_http = c->http;
	enum wp_proto p;

	if (c->m == c->w->model)
		return true;
	wmodel_unref(c->m);
	c->m = wmodel_ref(c->w->model);
	if (wp_resolve(c)) {
		p = c->svc ? wp_port_proto(c->sp) : WP_PROTO_SNIFF;
		/* still a port of the protocol it was declared or sniffed as */
		if (p == WP_PROTO_SNIFF || (p == WP_PROTO_HTTP) == was_http)
			return true;
	}
	c->svc = NULL;
	c->sp = NULL;
	c->pod = NULL;
	return false;
}

static void wp_request(void *ctx, struct hbone_stream *s, const struct hbone_request *req)
{
	struct wp_hconn *h = ctx;
	struct wp *w = h->w;
	struct wp_conn *c;
	enum wp_proto proto;
	int sp[2];

	if (!w->model) {
		log_info("HBONE stream from %s for %s refused with 503: no model yet",
			 req->peer_id ? req->peer_id : "?", req->authority);
		hbone_stream_reject(s, 503);
		return;
	}
	if (!req->is_ip) {
		hbone_stream_reject(s, 400);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		hbone_stream_reject(s, 503);
		return;
	}
	c->magic = WPC_MAGIC;
	c->w = w;
	c->dfd = c->ufd = -1;
	c->src = h->peer;
	c->r.start_ms = wp_now_ms();
	snprintf(c->peer, sizeof(c->peer), "%s", req->peer_id ? req->peer_id : "");
	snprintf(c->authority, sizeof(c->authority), "%s", req->authority);
	c->dst_port = req->port;
	wp_ss_ip(&req->target, &c->dst_ip);
	c->m = wmodel_ref(w->model);
	/* only what is bound to this waypoint: no open relay */
	if (!wp_resolve(c)) {
		log_info("HBONE stream from %s for %s refused with 404: not a destination of waypoint %s/%s",
			 c->peer, c->authority, w->ns, w->name);
		wmodel_unref(c->m);
		free(c);
		hbone_stream_reject(s, 404);
		return;
	}
	proto = c->svc ? wp_port_proto(c->sp) : WP_PROTO_SNIFF;
	c->http = proto == WP_PROTO_HTTP;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
		wmodel_unref(c->m);
		free(c);
		hbone_stream_reject(s, 503);
		return;
	}
	if (hbone_stream_accept(s, sp[0]) < 0) {
		close(sp[1]);
		wmodel_unref(c->m);
		free(c);
		return;
	}
	c->dfd = sp[1];
	if (loop_add(w->loop, c->dfd, EPOLLIN, wp_io, c) < 0) {
		close(c->dfd);
		wmodel_unref(c->m);
		free(c);
		return;
	}
	w->n_conns++;
	c->next = w->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &w->conns;
	w->conns = c;
	if (c->http) {
		c->st = S_HEAD;
		return;
	}
	if (proto == WP_PROTO_SNIFF) {
		c->st = S_SNIFF;
		c->timer = loop_timer_add(w->loop, WP_SNIFF_MS, wp_sniff_timeout, c);
		if (c->timer)
			return;
	}
	if (!wp_tcp_start(c))
		wp_conn_free(c);
}

static void wp_hconn_done(void *ctx, struct hbone_conn *hc, const char *reason)
{
	struct wp_hconn *h = ctx;

	(void)hc;
	log_debug("HBONE connection ended: %s", reason ? reason : "closed");
	*h->pprev = h->next;
	if (h->next)
		h->next->pprev = h->pprev;
	free(h);
}

void wp_shutdown(struct wp *w)
{
	wp_up_drain(&w->ups);
	while (w->hconns)
		hbone_conn_abort(w->hconns->hc, "waypoint stopping"); /* its done unlinks it */
	while (w->conns)
		wp_conn_free(w->conns);
	wph2_shutdown(w);
}

void wp_accept(struct wp *w, int fd, const struct sockaddr_storage *peer)
{
	struct wp_hconn *h = calloc(1, sizeof(*h));
	struct hbone_opts o;
	struct hbone_server_cbs cbs = { .on_request = wp_request, .on_conn_done = wp_hconn_done };

	if (!h) {
		close(fd);
		return;
	}
	h->w = w;
	h->peer = *peer;
	cbs.ctx = h;
	hbone_opts_default(&o, true);
	o.max_streams = WP_MAX_STREAMS;
	h->next = w->hconns;
	if (h->next)
		h->next->pprev = &h->next;
	h->pprev = &w->hconns;
	w->hconns = h;
	if (hbone_server_accept(w->loop, w->server_ctx, fd, &o, &cbs, &h->hc) < 0) {
		*h->pprev = h->next; /* fd closed, no callback */
		if (h->next)
			h->next->pprev = h->pprev;
		free(h);
	}
}
