/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mTLS wiring of the tunnel: the mesh CA and
 * workload identities, outbound routing to HBONE, the inbound 15008
 * server, and L4 policy. Contract in mtls.h.
 *
 * t->sec exists only when caDir is set. Without it the tunnel relays in
 * plaintext only when mtls: disabled says so (logged loudly at start);
 * otherwise it serves nothing (tunnel_serving). The compiled policy set
 * (published with the model, snap.h) is kept in both modes: 15006 is
 * policed with no identity either way.
 *
 * Identities: one per service account with an enrolled pod here
 * (identity_acquire at add/adopt, identity_release when the pod goes),
 * renewed at half-life by one loop timer armed for the earliest renewal.
 * After a renewal the pooled HBONE connections of that identity are
 * drained: their live streams go on with the old certificate, new
 * connections dial with the new one.
 *
 * Outbound: route.c decides where a connection goes; a route to HBONE is
 * opened here, from the source pod's netns through the pod's own pool,
 * with the identity the route expects of the destination.
 *
 * Inbound 15008: TLS with the pod identity's server context (the live
 * one at accept time); per stream: :authority must be an IP equal to the
 * address the connection arrived on (400), not a tunnel port (400), L4
 * policy with the peer identity (401), upstream connect from the pod netns
 * with the client's IP (503 on failure), then 200 and relay.
 */
#include "tunnel/mtls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "model/waypoint.h"
#include "netlink/netns.h"
#include "tunnel/ca.h"
#include "tunnel/ca_client.h"
#include "tunnel/hbone.h"
#include "tunnel/identity.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

#define RENEW_RECHECK_MS (3600u * 1000u) /* wall clock may jump: re-check hourly */
#define MAX_IDS 256

struct mtls {
	struct mesh_ca *ca;        /* caDir (development only), or ... */
	struct caclient *cc;       /* ... warren-ca (caAddress) */
	struct identity_mgr *ids;
	struct loop_timer *renew_timer;
	struct hbone_opts copts, sopts;
};

/* ------------------------------------------------------------- helpers */

static void mtls_isolate(void *ctx, bool enter)
{
	if (enter)
		workers_isolate(ctx);
	else
		workers_release(ctx);
}

static struct identity *mtls_identity_of(const struct pod *p)
{
	struct mtls *sec = p->t->sec;

	struct identity *id;

	/* replicas use their primary's reference */
	if (!sec || !pod_primary(p)->id_held)
		return NULL;
	id = identity_find(sec->ids, p->namespace, p->service_account);
	return id && identity_ready(id) ? id : NULL; /* pending: no certificate yet */
}

/* Why mtls_identity_of() is NULL, for refusals in the log and access log. */
static const char *mtls_pod_identity_why(const struct pod *p, char *buf, size_t len)
{
	struct mtls *sec = p->t->sec;
	struct identity *id = sec ? identity_find(sec->ids, p->namespace, p->service_account) : NULL;

	if (id && !identity_ready(id))
		snprintf(buf, len, "the source pod's identity %s has no certificate yet (%s)",
			 identity_id(id), identity_error(id));
	else
		snprintf(buf, len, "the source pod has no workload certificate (see the log)");
	return buf;
}

bool mtls_pod_cert_pending(const struct pod *p)
{
	struct mtls *sec = p->t->sec;
	struct identity *id;

	if (!sec || !pod_primary(p)->id_held)
		return false;
	id = identity_find(sec->ids, p->namespace, p->service_account);
	return id && !identity_ready(id);
}

const char *mtls_pod_identity(const struct pod *p, char *buf, size_t len)
{
	struct identity *id = mtls_identity_of(p);

	snprintf(buf, len, "%s", id ? identity_id(id) : "");
	return buf;
}

/* Low-cardinality label for warren_handshakes_total. */
static const char *mtls_hs_reason_class(const char *r)
{
	static const struct { const char *needle, *cls; } map[] = {
		{ "not signed by", "untrusted_ca" },
		{ "not in trust domain", "trust_domain" },
		{ "but peer presented", "identity_mismatch" },
		{ "no client certificate", "no_client_cert" },
		{ "requires a client certificate", "no_client_cert" },
		{ "identity not accepted", "peer_refused" },
		{ "no SPIFFE", "no_identity" },
		{ "URI SANs", "uri_san_count" },
		{ "expired", "cert_expired" },
		{ "not yet valid", "cert_not_yet_valid" },
		{ "TLS 1.3", "tls_version" },
		{ "ALPN", "alpn" },
		{ "timed out", "timeout" },
		{ "not speaking TLS", "not_tls" },
		{ "closed", "peer_closed" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strstr(r, map[i].needle))
			return map[i].cls;
	return "other";
}

static void mtls_hs_observer(void *ctx, bool server, bool ok, const char *reason)
{
	struct tunnel *t = ctx;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	if (ok) {
		metrics_handshake(t, true, "ok");
		return;
	}
	metrics_handshake(t, false, mtls_hs_reason_class(reason));
	log_info("HBONE %s TLS handshake failed: %s", server ? "server (inbound 15008)" : "client (outbound)",
		 reason);
}

/* -------------------------------------------------------------- renewal */

static void mtls_csr_observer(void *ctx, int ret, double ms)
{
	metrics_csr(ctx, ret, ms);
}

static void mtls_renew_arm(struct tunnel *t);

/* A certificate renewed: pooled connections of that identity dial again
 * with it (live streams go on with the old one). */
static void mtls_renewed_drain(struct tunnel *t, const char *id, const char *old_serial,
			  const struct identity_info *now)
{
	log_info("certificate for %s renewed: serial %s -> %s, valid until %lld, next renewal in %lld s; pooled HBONE connections drained (live streams continue)",
		 id, old_serial, now->serial_hex, (long long)now->not_after, (long long)now->renew_in_s);
	workers_isolate(t); /* the pools are the workers' */
	for (struct pod *p = t->pods; p; p = pod_shard_next(p))
		if (p->pool)
			hbone_pool_drain(p->pool, id);
	workers_release(t);
}

/* warren-ca answered a request (identity_mgr_complete, on the loop). */
static void mtls_issued_cb(void *ctx, const struct identity *id, int ret, const char *old_serial)
{
	struct tunnel *t = ctx;
	const struct ca_leaf *leaf = identity_leaf0(id);

	CHECK_OBJ(t, TUNNEL_MAGIC);
	if (!ret && leaf) {
		struct identity_info now = { 0 };

		metrics_cert_expiry(t, identity_id(id), (int64_t)leaf->not_after);
		snprintf(now.serial_hex, sizeof(now.serial_hex), "%s", leaf->serial_hex);
		now.not_after = leaf->not_after;
		now.renew_in_s = identity_next_renewal_ms(t->sec->ids) / 1000;
		if (old_serial[0] && strcmp(old_serial, leaf->serial_hex))
			mtls_renewed_drain(t, identity_id(id), old_serial, &now);
	}
	mtls_renew_arm(t);
	if (!ret && !old_serial[0])
		state_listen_adopted(t); /* adopted pods waiting for this certificate */
}

static void mtls_renew_cb(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;
	struct mtls *sec;
	struct identity_info *before = NULL, *after = NULL;
	size_t nb, na;
	int ret;

	CHECK_OBJ(t, TUNNEL_MAGIC);
	sec = t->sec;
	sec->renew_timer = NULL;
	before = calloc(MAX_IDS, sizeof(*before));
	after = calloc(MAX_IDS, sizeof(*after));
	if (!before || !after)
		goto out;
	nb = identity_snapshot(sec->ids, time(NULL), before, MAX_IDS);
	ret = identity_renew_due(sec->ids, time(NULL));
	if (ret < 0)
		log_error("certificate renewal failed: %s; the current certificates stay in use and renewal is retried with backoff",
			  strerror(-ret));
	na = identity_snapshot(sec->ids, time(NULL), after, MAX_IDS);
	for (size_t i = 0; i < na && i < MAX_IDS; i++) {
		if (!after[i].not_after)
			continue; /* pending: no certificate yet */
		metrics_cert_expiry(t, after[i].id, (int64_t)after[i].not_after);
		for (size_t k = 0; k < nb && k < MAX_IDS; k++) {
			if (strcmp(before[k].id, after[i].id) ||
			    !strcmp(before[k].serial_hex, after[i].serial_hex))
				continue;
			mtls_renewed_drain(t, after[i].id, before[k].serial_hex, &after[i]);
		}
	}
out:
	free(before);
	free(after);
	mtls_renew_arm(t);
	state_listen_adopted(t); /* adopted pods whose certificate just came */
}

static void mtls_renew_arm(struct tunnel *t)
{
	struct mtls *sec = t->sec;
	int64_t ms;

	if (!sec)
		return;
	if (sec->renew_timer) {
		loop_timer_cancel(t->loop, sec->renew_timer);
		sec->renew_timer = NULL;
	}
	ms = identity_next_renewal_ms(sec->ids);
	if (ms < 0)
		return;
	if (ms > RENEW_RECHECK_MS)
		ms = RENEW_RECHECK_MS;
	if (ms < 100)
		ms = 100; /* never spin, whatever the schedule says */
	sec->renew_timer = loop_timer_add(t->loop, (uint64_t)ms, mtls_renew_cb, t);
	if (!sec->renew_timer)
		log_error("cannot arm the certificate renewal timer (out of memory); certificates will not renew");
}

/* ------------------------------------------------------------ lifecycle */

int mtls_start(struct tunnel *t)
{
	const struct tunnel_conf *conf = t->conf;
	struct mtls *sec;
	char err[512] = "";
	int ret;

	if (!conf->ca_dir && !conf->ca_address && conf->mtls_disabled) {
		log_warn("*** PLAINTEXT MODE (mtls: disabled): pod-to-pod traffic is relayed as plain TCP, NOT encrypted and NOT authenticated (no HBONE on 15008). Set caAddress (warren-ca) or caDir (see hack/gen-ca.sh) and remove mtls: disabled to enable mTLS. ***");
		return 0;
	}
	if (!conf->ca_dir && !conf->ca_address) {
		/* Plaintext between enrolled pods only by explicit choice. */
		log_error("no caAddress or caDir configured and mtls is not disabled: NOT READY, every captured connection is refused. Set caAddress (warren-ca) or caDir (see hack/gen-ca.sh), or mtls: disabled for plaintext between enrolled pods");
		return 0;
	}
	sec = calloc(1, sizeof(*sec));
	if (!sec)
		return -ENOMEM;
	if (conf->ca_address) {
		struct caclient_conf cc = { .url = conf->ca_address, .token_file = conf->ca_token_file,
					    .bundle_file = conf->trust_bundle,
					    .td = conf->trust_domain,
					    .protocol = strcmp(conf->ca_protocol, "istio")
								? CACLIENT_WARREN : CACLIENT_ISTIO,
					    .validity_s = conf->cert_lifetime_s };
		STACK_OF(X509) *roots = NULL;

		/* A bad bundle is a configuration error: say so now, not per pod. */
		ret = caclient_bundle_load(conf->trust_bundle, &roots, err, sizeof(err));
		sk_X509_pop_free(roots, X509_free);
		if (ret < 0) {
			log_error("%s", err);
			goto fail;
		}
		ret = caclient_new(&cc, &sec->cc);
		if (!ret)
			ret = identity_mgr_new_remote(sec->cc, conf->trust_domain, &sec->ids);
		if (!ret) {
			identity_mgr_set_csr_observer(sec->ids, mtls_csr_observer, t);
			identity_mgr_set_issued_cb(sec->ids, mtls_issued_cb, t);
		}
	} else {
		log_warn("caDir: the mesh signing key is on this node: development and single-host use only (a node can then mint any identity); use caAddress (warren-ca) in a cluster");
		ret = ca_load_dir(conf->ca_dir, &sec->ca, err, sizeof(err));
		if (ret < 0) {
			log_error("cannot load the mesh CA from caDir %s: %s", conf->ca_dir,
				  err[0] ? err : strerror(-ret));
			goto fail;
		}
		ret = identity_mgr_new(sec->ca, conf->trust_domain, (uint32_t)conf->cert_lifetime_s,
				       &sec->ids);
	}
	if (ret < 0) {
		log_error("cannot set up workload identities (trust domain \"%s\", lifetime %d s): %s",
			  conf->trust_domain, conf->cert_lifetime_s, strerror(-ret));
		goto fail;
	}
	identity_mgr_set_isolation(sec->ids, mtls_isolate, t);
	identity_mgr_set_loop(sec->ids, t->loop);
	hbone_opts_default(&sec->copts, false);
	hbone_opts_default(&sec->sopts, true);
	sec->copts.max_streams = (uint32_t)conf->pool_max_streams;
	sec->copts.idle_ms = (uint32_t)conf->pool_idle_timeout_ms;
	sec->copts.ping_interval_ms = sec->sopts.ping_interval_ms = (uint32_t)conf->hbone_ping_interval_ms;
	sec->copts.ping_timeout_ms = sec->sopts.ping_timeout_ms = 2u * (uint32_t)conf->hbone_ping_interval_ms;
	sec->sopts.connect_timeout_ms = (uint32_t)conf->hbone_handshake_timeout_ms;
	t->sec = sec;
	hbone_set_handshake_observer(mtls_hs_observer, t);
	if (conf->ca_address)
		log_info("mTLS mode: certificates from warren-ca %s (trust bundle %s), trust domain %s; HBONE pool %d streams/connection, idle timeout %d ms, PING every %d ms",
			 conf->ca_address, conf->trust_bundle, conf->trust_domain, conf->pool_max_streams,
			 conf->pool_idle_timeout_ms, conf->hbone_ping_interval_ms);
	else
		log_info("mTLS mode: mesh CA from %s, trust domain %s, certificate lifetime %d s; HBONE pool %d streams/connection, idle timeout %d ms, PING every %d ms",
			 conf->ca_dir, conf->trust_domain, conf->cert_lifetime_s, conf->pool_max_streams,
			 conf->pool_idle_timeout_ms, conf->hbone_ping_interval_ms);
	return 0;
fail:
	identity_mgr_free(sec->ids);
	caclient_free(sec->cc);
	ca_free(sec->ca);
	free(sec);
	return ret;
}

void mtls_stop(struct tunnel *t)
{
	struct mtls *sec = t->sec;

	if (!sec)
		return;
	if (sec->renew_timer)
		loop_timer_cancel(t->loop, sec->renew_timer);
	hbone_set_handshake_observer(NULL, NULL);
	identity_mgr_free(sec->ids);
	caclient_free(sec->cc);
	ca_free(sec->ca);
	free(sec);
	t->sec = NULL;
}

int mtls_pod_added(struct pod *p)
{
	struct tunnel *t = p->t;
	struct identity *id = NULL;
	const struct ca_leaf *leaf;
	char err[512] = "";
	int ret;

	if (!t->sec || p->id_held)
		return 0;
	ret = identity_acquire(t->sec->ids, p->namespace, p->service_account, &id, err, sizeof(err));
	if (ret < 0) {
		log_error("no workload certificate for pod %s/%s (service account %s): %s; its HBONE traffic is refused until it is re-added",
			  p->namespace, p->name, p->service_account, err[0] ? err : strerror(-ret));
		return ret;
	}
	workers_isolate(t); /* its shards' connections read it (mtls_identity_of) */
	p->id_held = true;
	workers_release(t);
	leaf = identity_leaf0(id);
	if (leaf) {
		metrics_cert_expiry(t, identity_id(id), (int64_t)leaf->not_after);
		log_info("pod %s/%s uses identity %s (serial %s, refs %u)", p->namespace, p->name,
			 identity_id(id), leaf->serial_hex, identity_refs(id));
	} else if (identity_in_flight(id)) {
		log_info("pod %s/%s uses identity %s, whose certificate is requested from the CA (%s): its connections are refused until it comes",
			 p->namespace, p->name, identity_id(id), identity_error(id));
	} else {
		log_warn("pod %s/%s uses identity %s, which has no certificate yet (%s): its connections are refused until warren-ca signs one",
			 p->namespace, p->name, identity_id(id), identity_error(id));
	}
	mtls_renew_arm(t);
	return 0;
}

static void mtls_hsrv_conn_done(void *ctx, struct hbone_conn *hc, const char *reason)
{
	struct hsrv *h = ctx;

	CHECK_OBJ(h, HSRV_MAGIC);
	(void)hc;
	workers_hbone_conns_add(h->t, h->worker, -1);
	if (h->pod) {
		if (h->prev)
			h->prev->next = h->next;
		else
			h->pod->hsrvs = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	log_debug("inbound HBONE connection ended: %s", reason ? reason : "closed");
	h->magic = 0;
	free(h);
}

void mtls_pod_removed(struct pod *p)
{
	struct tunnel *t = p->t;
	struct hsrv *h, *next;

	/* Outbound streams end through their done callbacks (conn freed). */
	hbone_pool_free(p->pool);
	p->pool = NULL;
	h = p->hsrvs;
	p->hsrvs = NULL;
	for (; h; h = next) {
		next = h->next;
		h->pod = NULL;
		h->prev = h->next = NULL;
		hbone_conn_abort(h->hc, "pod removed");
	}
	if (p->id_held && t->sec) {
		char id[SPIFFE_ID_MAX];

		mtls_pod_identity(p, id, sizeof(id));
		identity_release(t->sec->ids, p->namespace, p->service_account);
		p->id_held = false;
		if (!identity_find(t->sec->ids, p->namespace, p->service_account)) {
			metrics_cert_forget(t, id);
			log_info("identity %s dropped: its last pod on this node left", id);
		}
		mtls_renew_arm(t);
	}
}

/* ---------------------------------------------------------------- policy */

struct log_ctx {
	size_t invalid, ignored;
};

static void mtls_log_policy(const struct authz_policy_info *in, void *ctx)
{
	struct log_ctx *lc = ctx;
	char msgs[1024] = "";
	size_t off = 0;

	for (size_t i = 0; i < in->n_msgs && off < sizeof(msgs); i++)
		off += (size_t)snprintf(msgs + off, sizeof(msgs) - off, "%s%s: %s", i ? "; " : "",
					authz_msg_level_name(in->msgs[i].level), in->msgs[i].text);
	if (in->state == AUTHZ_POLICY_INVALID) {
		lc->invalid++;
		log_error("%s %s is invalid, its workloads fail closed (every connection denied): %s",
			  in->kind == AUTHZ_KIND_AUTHORIZATION ? "AuthorizationPolicy" : "PeerAuthentication",
			  in->key, msgs);
	} else if (in->state == AUTHZ_POLICY_IGNORED) {
		lc->ignored++;
		log_warn("%s %s is ignored: %s",
			 in->kind == AUTHZ_KIND_AUTHORIZATION ? "AuthorizationPolicy" : "PeerAuthentication",
			 in->key, msgs);
	} else if (in->n_msgs) {
		log_warn("%s %s: %s",
			 in->kind == AUTHZ_KIND_AUTHORIZATION ? "AuthorizationPolicy" : "PeerAuthentication",
			 in->key, msgs);
	}
}

int mtls_policies_compile(const struct tunnel *t, const struct mesh *m, struct authz_set **out)
{
	struct log_ctx lc = { 0 };
	int ret;

	*out = NULL;
	ret = authz_compile(m->authorization_policies, m->peer_authentications,
			    t->conf->root_namespace, out);
	if (ret < 0) {
		log_error("cannot compile the policies of mesh generation %llu: %s; keeping the previous set",
			  (unsigned long long)m->generation, strerror(-ret));
		return ret;
	}
	authz_policies_foreach(*out, mtls_log_policy, &lc);
	if (authz_set_count(*out) || authz_set_count(tunnel_policies(t)))
		log_info("policies of mesh generation %llu: %zu compiled (%zu invalid, %zu ignored)",
			 (unsigned long long)m->generation, authz_set_count(*out), lc.invalid,
			 lc.ignored);
	return 0;
}

int mtls_authorize(const struct conn *c, struct authz_decision *d)
{
	const struct pod *p = c->pod;
	struct authz_workload w = { .namespace = p->namespace, .name = p->name };
	struct authz_conn ac = { .peer_identity = c->route.peer_id };

	if (c->route.local)
		w.labels = c->route.local->labels;
	route_ss_to_ip(&c->src, &ac.src_ip, &ac.src_port);
	route_ss_to_ip(&c->dst, &ac.dst_ip, &ac.dst_port);
	return authz_evaluate(tunnel_policies(p->t), &w, &ac, d);
}

/* --------------------------------------------------------------- outbound */

static int mtls_pod_mksock(void *ctx, const struct sockaddr *dst, socklen_t dstlen)
{
	(void)dstlen;
	return pod_socket(ctx, dst->sa_family);
}

void mtls_outbound_hbone(struct conn *c)
{
	struct pod *p = c->pod;
	struct tunnel *t = p->t;
	struct mtls *sec = t->sec;
	const struct route *r = &c->route;
	struct identity *id;
	char fwd[400], bag[512], host[320], msg[600];
	const char *expv[1] = { r->peer_id };
	struct hbone_stream *s = NULL;
	int app_fd, ret;

	id = mtls_identity_of(p);
	if (!id) {
		char idwhy[400];

		snprintf(msg, sizeof(msg), "%s; refusing to send in the clear to an enrolled destination",
			 mtls_pod_identity_why(p, idwhy, sizeof(idwhy)));
		conn_fail(c, msg, 0);
		return;
	}
	if (!p->pool) {
		ret = hbone_pool_new(p->loop, &sec->copts, &p->pool);
		if (ret < 0) {
			conn_fail(c, "cannot create the HBONE pool", -ret);
			return;
		}
	}
	route_service_host(r, host, sizeof(host));
	if (hbone_format_forwarded(fwd, sizeof(fwd), (const struct sockaddr *)&c->src,
				   host[0] ? host : NULL) < 0)
		fwd[0] = '\0';
	snprintf(bag, sizeof(bag), "k8s.cluster.name=%s,k8s.namespace.name=%s,k8s.pod.name=%s",
		 t->conf->cluster_id ? t->conf->cluster_id : "Kubernetes", p->namespace, p->name);
	c->hbone = true;
	metrics_conn_identity(c, identity_id(id), r->peer_id);
	metrics_conn_open(c);
	{
		struct hbone_pool_target tg = {
			.src_id = identity_id(id), .ctx = identity_ctx0(id, TLS_CLIENT),
			.dst = (const struct sockaddr *)&r->hbone_addr,
			.dstlen = ss_len(&r->hbone_addr),
			.expect = expv, .n_expect = 1, .mksock = mtls_pod_mksock, .mksock_ctx = p,
		};
		struct hbone_connect_req req = { .authority = r->authority,
						 .forwarded = fwd[0] ? fwd : NULL, .baggage = bag };

		app_fd = c->app_fd;
		c->app_fd = -1;
		c->opening = true;
		ret = hbone_pool_open(p->pool, &tg, &req, app_fd, conn_hs_out_done, c, &s);
		c->opening = false;
	}
	if (ret < 0) {
		char bo[400];

		if (ret == -ECONNREFUSED &&
		    hbone_pool_backoff(p->pool, (const struct sockaddr *)&r->hbone_addr, bo, sizeof(bo))) {
			/* the access log's reason says why the connection was refused */
			snprintf(msg, sizeof(msg), "upstream connect refused, backing off (%s)", bo);
			conn_fail(c, msg, 0);
			return;
		}
		conn_fail(c, "cannot open an HBONE stream", -ret);
		return;
	}
	if (c->early_reason) {
		snprintf(msg, sizeof(msg), "HBONE stream failed: %s", c->early_reason);
		conn_fail(c, msg, 0);
		return;
	}
	c->hs = s;
	if (wlog_get_level() >= WLOG_DEBUG) { /* three address formats per connection otherwise */
		char sa[64], da[64];

		log_debug("outbound connection %s -> %s of pod %s/%s: HBONE to %s (:authority %s, expecting %s)",
			  sockaddr_str(&c->src, sa, sizeof(sa)), sockaddr_str(&c->dst, da, sizeof(da)),
			  p->namespace, p->name, sockaddr_str(&r->hbone_addr, msg, sizeof(msg)), r->authority,
			  r->peer_id);
	}
	return;
}

/* ---------------------------------------------------------------- inbound */

/* No bypass: a workload bound to a waypoint (its own label, or a Service
 * selecting it) takes HBONE only from that waypoint's identity, unless an
 * ALLOW policy that names the source admits it, or the pod opts out
 * (MESH_ANNOTATION_ALLOW_DIRECT). Istio leaves this to a policy the user
 * writes; here it is the default. 0, or -EACCES (answered 401, c freed). */
static int mtls_waypoint_bypass(struct conn *c)
{
	struct tunnel *t = c->pod->t;
	const struct mesh_pod *mp = c->route.local;
	const char *peer = c->route.peer_id;
	struct mesh_wp_binding b;
	struct spiffe_id sid;
	struct authz_decision d;
	char name[300], msg[700];

	if (!tunnel_model(t) || !mp || !mesh_pod_requires_waypoint(tunnel_model(t), mp, &b))
		return 0;
	if (peer && !spiffe_id_parse(peer, &sid) && mesh_waypoint_identity(&b, sid.ns, sid.sa))
		return 0;
	/* an ALLOW policy that matched this source explicitly lets it in */
	if (authz_set_count(tunnel_policies(t)) && !mtls_authorize(c, &d) && d.policy[0] != '(')
		return 0;
	snprintf(name, sizeof(name), "%s/%s", b.ns, b.name);
	snprintf(msg, sizeof(msg), "pod is bound to waypoint %s and %s is not its identity (no bypass; an ALLOW policy naming the source, or annotation " MESH_ANNOTATION_ALLOW_DIRECT "=true, admits it)",
		 name, peer && *peer ? peer : "the peer");
	metrics_waypoint_refused(t, name, "bypass");
	conn_hs_reject(c, 401, msg);
	return -EACCES;
}

static void mtls_hsrv_request(void *ctx, struct hbone_stream *s, const struct hbone_request *req)
{
	struct hsrv *h = ctx;
	struct pod *p;
	struct conn *c;
	char own[SPIFFE_ID_MAX], msg[300];

	CHECK_OBJ(h, HSRV_MAGIC);
	p = h->pod;
	if (!p) {
		hbone_stream_reject(s, 503);
		return;
	}
	c = conn_new(p, CONN_INBOUND, -1, &h->peer);
	if (!c) {
		log_error("out of memory for an HBONE stream of pod %s/%s", p->namespace, p->name);
		hbone_stream_reject(s, 503);
		return;
	}
	c->hbone = true;
	c->hs = s;
	hbone_stream_set_user(s, c);
	c->route.peer_id = strdup(req->peer_id ? req->peer_id : "");
	metrics_conn_identity(c, req->peer_id, mtls_pod_identity(p, own, sizeof(own)));
	if (!req->is_ip) {
		snprintf(msg, sizeof(msg), ":authority %s is a hostname; only <pod IP>:<port> is served here",
			 req->authority);
		conn_hs_reject(c, 400, msg);
		return;
	}
	c->dst = req->target;
	ss_canonicalise(&c->dst);
	if (!ss_same_ip(&c->dst, &h->local)) {
		char a[64];

		snprintf(msg, sizeof(msg), ":authority %s is not this pod's address %s", req->authority,
			 sockaddr_str(&h->local, a, sizeof(a)));
		conn_hs_reject(c, 400, msg);
		return;
	}
	if (port_is_tunnel(req->port)) {
		conn_hs_reject(c, 400, "target is a tunnel port (self-call refused)");
		return;
	}
	route_inbound(&c->route, p->t, p, &c->src, &c->dst);
	if (mtls_waypoint_bypass(c) < 0)
		return; /* answered 401, c freed */
	if (conn_authorize(c) < 0)
		return; /* answered 401, c freed */
	metrics_conn_open(c);
	conn_connect(c);
}

/*
 * Before a client has authenticated it has cost us an fd, a timer and an
 * SSL: cap how many may wait in their handshake, per pod and per client
 * address. Each worker's shard takes its share of the limits (connections
 * are spread over the shards). NULL when p may take one more, else which
 * limit was hit (the metric's reason).
 */
static const char *mtls_hbone_pending_full(const struct pod *p, const struct sockaddr_storage *peer)
{
	const struct tunnel_conf *conf = p->t->conf;
	unsigned nw = p->t->n_workers ? p->t->n_workers : 1;
	unsigned max_pod = ((unsigned)conf->hbone_max_pending + nw - 1) / nw;
	unsigned max_src = ((unsigned)conf->hbone_max_pending_source + nw - 1) / nw;
	unsigned pod_n = 0, src_n = 0;

	for (const struct hsrv *h = p->hsrvs; h; h = h->next) {
		struct hbone_conn_info info;

		hbone_conn_get_info(h->hc, &info);
		if (info.state != HBONE_HANDSHAKE)
			continue;
		pod_n++;
		src_n += ss_same_ip(&h->peer, peer);
	}
	if (src_n >= max_src)
		return "source_limit";
	if (pod_n >= max_pod)
		return "pod_limit";
	return NULL;
}

void mtls_hbone_accept(struct pod *p, int fd, const struct sockaddr_storage *peer)
{
	struct tunnel *t = p->t;
	struct identity *id = mtls_identity_of(p);
	struct hbone_server_cbs cbs = { .on_request = mtls_hsrv_request, .on_stream_done = conn_hs_in_done,
					.on_conn_done = mtls_hsrv_conn_done };
	socklen_t len = sizeof(struct sockaddr_storage);
	struct hsrv *h;
	const char *full;
	char a[64];
	int ret;

	if (!id) {
		char why[400];

		log_warn("HBONE connection from %s to pod %s/%s refused: %s",
			 sockaddr_str(peer, a, sizeof(a)), p->namespace, p->name,
			 mtls_pod_identity_why(p, why, sizeof(why)));
		rst_close(fd);
		return;
	}
	full = mtls_hbone_pending_full(p, peer);
	if (full) {
		static _Atomic uint64_t warned_ms;
		uint64_t now = loop_now_ms(), last = warned_ms;

		metrics_hbone_refused(t, full);
		if ((!last || now - last >= 10000) && atomic_compare_exchange_strong(&warned_ms, &last, now))
			log_warn("HBONE connection from %s to pod %s/%s refused: too many TLS handshakes pending %s (see warren_hbone_refused_total)",
				 sockaddr_str(peer, a, sizeof(a)), p->namespace, p->name,
				 full[0] == 's' ? "from that address" : "for the pod");
		rst_close(fd);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		rst_close(fd);
		return;
	}
	*h = (struct hsrv){ .magic = HSRV_MAGIC, .pod = p, .peer = *peer };
	if (getsockname(fd, (struct sockaddr *)&h->local, &len) < 0) {
		free(h);
		rst_close(fd);
		return;
	}
	ss_canonicalise(&h->local);
	cbs.ctx = h;
	ret = hbone_server_accept(p->loop, identity_ctx0(id, TLS_SERVER), fd, &t->sec->sopts, &cbs, &h->hc);
	if (ret < 0) {
		log_warn("cannot serve HBONE connection from %s to pod %s/%s: %s",
			 sockaddr_str(peer, a, sizeof(a)), p->namespace, p->name, strerror(-ret));
		free(h);
		return;
	}
	h->next = p->hsrvs;
	if (p->hsrvs)
		p->hsrvs->prev = h;
	p->hsrvs = h;
	h->t = t;
	h->worker = p->worker;
	workers_hbone_conns_add(t, p->worker, 1);
	/* accepted before our listeners closed, served after: drain.c */
	if (t->draining)
		hbone_conn_goaway(h->hc);
}

/* ------------------------------------------------------------- scrape/admin */

void mtls_scrape(struct tunnel *t)
{
	struct hbone_pool_conn_info *info;
	uint64_t conns = 0, streams = 0;

	if (!t->sec)
		return;
	info = calloc(64, sizeof(*info));
	workers_isolate(t); /* the pools are the workers' */
	for (struct pod *p = t->pods; info && p; p = pod_shard_next(p)) {
		size_t n;

		if (!p->pool)
			continue;
		n = hbone_pool_stats(p->pool, info, 64);
		conns += n;
		for (size_t i = 0; i < n && i < 64; i++)
			streams += info[i].conn.streams;
	}
	workers_release(t);
	free(info);
	metrics_pool_set(t, conns, streams);
}

static json_t *mtls_time_json(time_t ts)
{
	char buf[32];
	struct tm tm;

	gmtime_r(&ts, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

json_t *mtls_certs_json(const struct tunnel *t)
{
	json_t *a = json_array();
	struct identity_info *info;
	size_t n;

	if (!a || !t->sec)
		return a;
	info = calloc(MAX_IDS, sizeof(*info));
	if (!info)
		return a;
	n = identity_snapshot(t->sec->ids, time(NULL), info, MAX_IDS);
	for (size_t i = 0; i < n && i < MAX_IDS; i++)
		json_array_append_new(a, json_pack("{s:s,s:s,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:b,s:s}",
			"identity", info[i].id, "serial", info[i].serial_hex,
			"notBefore", mtls_time_json(info[i].not_before), "notAfter", mtls_time_json(info[i].not_after),
			"notAfterUnix", (json_int_t)info[i].not_after,
			"renewAtUnix", (json_int_t)info[i].renew_at,
			"renewInSeconds", (json_int_t)info[i].renew_in_s, "refs", (json_int_t)info[i].refs,
			"failures", (json_int_t)info[i].failures, "requestInFlight", info[i].in_flight,
			"error", info[i].error));
	free(info);
	return a;
}

struct sel_ctx {
	json_t *map; /* key -> array of "ns/name" */
	const char *pod;
};

static void mtls_sel_cb(const struct authz_policy_info *in, void *ctx)
{
	struct sel_ctx *sc = ctx;
	json_t *arr = json_object_get(sc->map, in->key);

	if (!arr) {
		arr = json_array();
		json_object_set_new(sc->map, in->key, arr);
	}
	json_array_append_new(arr, json_string(sc->pod));
}

struct pol_ctx {
	json_t *arr, *map;
};

static void mtls_pol_cb(const struct authz_policy_info *in, void *ctx)
{
	struct pol_ctx *pc = ctx;
	json_t *msgs = json_array(), *sel = json_object_get(pc->map, in->key);

	for (size_t i = 0; msgs && i < in->n_msgs; i++)
		json_array_append_new(msgs, json_pack("{s:s,s:s}", "level",
			authz_msg_level_name(in->msgs[i].level), "text", in->msgs[i].text));
	json_array_append_new(pc->arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o}",
		"kind", in->kind == AUTHZ_KIND_AUTHORIZATION ? "AuthorizationPolicy" : "PeerAuthentication",
		"namespace", in->namespace, "name", in->name, "key", in->key, "scope", in->scope,
		"action", in->action, "state", authz_state_name(in->state),
		"messages", msgs ? msgs : json_array(),
		"selects", sel ? json_incref(sel) : json_array()));
}

json_t *mtls_policies_json(const struct tunnel *t)
{
	struct pol_ctx pc = { .arr = json_array(), .map = json_object() };
	const struct authz_set *set = tunnel_policies(t);

	if (!pc.arr || !pc.map || !set)
		goto out;
	for (const struct pod *p = t->pods; p; p = p->next) {
		const struct mesh_pod *mp = route_local_pod(t, p);
		struct authz_workload w = { .namespace = p->namespace, .name = p->name };
		char name[320];
		struct sel_ctx sc = { .map = pc.map, .pod = name };

		if (mp)
			w.labels = mp->labels;
		snprintf(name, sizeof(name), "%s/%s", p->namespace, p->name);
		authz_policies_selecting(set, &w, mtls_sel_cb, &sc);
	}
	authz_policies_foreach(set, mtls_pol_cb, &pc);
out:
	json_decref(pc.map);
	return pc.arr ? pc.arr : json_array();
}

json_t *mtls_pool_json(struct tunnel *t)
{
	json_t *a = json_array();
	struct hbone_pool_conn_info *info;

	if (!a || !t->sec)
		return a;
	info = calloc(1024, sizeof(*info));
	workers_isolate(t); /* the pools are the workers' (a debugging view) */
	for (const struct pod *p = t->pods; info && p; p = pod_shard_next(p)) {
		size_t n;

		if (!p->pool)
			continue;
		n = hbone_pool_stats(p->pool, info, 1024);
		for (size_t i = 0; i < n && i < 1024; i++) {
			const struct hbone_conn_info *ci = &info[i].conn;

			json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}",
				"pod", p->name, "namespace", p->namespace, "worker", (json_int_t)p->worker,
				"sourceIdentity", info[i].src_id, "destination", info[i].dst,
				"state", hbone_conn_state_name(ci->state),
				"peerIdentity", ci->peer_id, "streams", (json_int_t)ci->streams,
				"streamsTotal", (json_int_t)ci->streams_total,
				"bytesIn", (json_int_t)ci->bytes_in, "bytesOut", (json_int_t)ci->bytes_out,
				"ageMs", (json_int_t)ci->age_ms, "idleMs", (json_int_t)ci->idle_ms));
		}
	}
	workers_release(t);
	free(info);
	return a;
}
