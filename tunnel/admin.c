/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin, readiness and metrics HTTP, served by our own small HTTP/1.1
 * server on the tunnel's loop (tunnel/http.h: keep-alive, at most 64
 * connections per socket, the one idle longest closed for a new one, 5 s
 * to send a request). Each address has its own server, so a client that
 * fills the admin or metrics port never delays the readiness answer. Listening sockets are
 * created here and handed to it (it closes them on stop), so bind errors
 * carry our message. Responses are built whole (one malloc'd body) and
 * HEAD is answered like GET without the body.
 *
 * Admin on adminSocket (a Unix socket, mode 0600: root only; default
 * /var/run/warren/admin.sock), every endpoint below. On adminAddress (TCP,
 * none by default), which any local user or host-network pod can reach,
 * only the read-only ones that hold no secret: /certs, /admin_config_dump and
 * POST /logging answer 403 there.
 *
 *   GET  /pods          JSON array of enrolled pods
 *   GET  /workloads     JSON array of the mesh model's pods (enrolled? local?)
 *   GET  /services      JSON array of the mesh model's services with endpoints
 *   GET  /connections   JSON array of live connections (with security and identities)
 *   GET  /certs         JSON array of workload certificates (mTLS mode; else [])
 *   GET  /policies      JSON array of compiled policies and the local pods they select
 *   GET  /pool          JSON array of pooled outbound HBONE connections
 *   GET  /state_records JSON array of state records that could not be read
 *                       at start (moved aside; their pods not re-adopted)
 *   GET  /admin_config_dump   {version, pid, config, pods, mesh, ready, hostProbe}
 *   GET  /logging       {level};  POST /logging?level=debug sets it
 *   GET  /healthz/ready (also on the readiness address)
 *   GET  /stats/prometheus, /metrics (also on the metrics address)
 * Readiness (readinessAddress, default 0.0.0.0:15021): GET /healthz/ready,
 * 200 "ready" or 503 with the reason ("adopting N/M pods" while the pods
 * recorded before a restart are re-adopted: these servers start first and
 * adoption runs on the loop, state.c).
 * Metrics (metricsAddress, default 0.0.0.0:15020): GET /metrics and
 * /stats/prometheus, Prometheus text format 0.0.4 (tunnel/metrics.h).
 * metricsAddress/readinessAddress "off" disable that server.
 */
#include "tunnel/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "tunnel/ca.h"
#include "tunnel/host_probe.h"
#include "tunnel/http.h"
#include "tunnel/kube_tunnel.h"
#include "tunnel/loop.h"
#include "tunnel/metrics.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/relay.h"
#include "tunnel/state.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

#define SRV_MAGIC 0x48545450u
#define SRV_MAX 4
#define PROM_CTYPE "text/plain; version=0.0.4; charset=utf-8"

enum srv_kind { SRV_ADMIN, SRV_READINESS, SRV_METRICS, SRV_ADMIN_TCP };

static const char *const admin_srv_kind_name[] = { "admin API", "readiness", "metrics",
					     "admin API (read-only)" };

struct http_srv {
	unsigned magic;
	struct tunnel *t;
	struct http_server *hs;
	enum srv_kind kind;
};

struct admin {
	struct http_srv srv[SRV_MAX];
	int n;
	dev_t sock_dev; /* adminSocket's file as we bound it: a successor may */
	ino_t sock_ino; /* have bound its own at the path since */
	struct loop_timer *succ_timer; /* watching for that while we answer readiness */
};

/* How often a tunnel answering readiness checks whether a successor took
 * adminSocket over. */
#define ADMIN_SUCCESSOR_CHECK_MS 500

/* Takes body (malloc'd, NUL-terminated; NULL after an allocation failure,
 * which the server answers with 500). */
static void admin_respond(struct http_response *resp, unsigned status, char *body, const char *ctype)
{
	resp->status = status;
	resp->content_type = ctype;
	resp->body = body;
	resp->body_len = body ? strlen(body) : 0;
}

static void admin_respond_json(struct http_response *resp, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	char *body = NULL;

	json_decref(j);
	if (s && asprintf(&body, "%s\n", s) < 0)
		body = NULL;
	free(s);
	admin_respond(resp, status, body, "application/json");
}

static void admin_respond_text(struct http_response *resp, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void admin_respond_text(struct http_response *resp, unsigned status, const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&body, fmt, ap) < 0)
		body = NULL;
	va_end(ap);
	admin_respond(resp, status, body, "text/plain; charset=utf-8");
}

/* The connection counts are the workers': copied with them isolated, the
 * rest (the pods, which only this thread changes) built after. */
static json_t *admin_pods_json(struct tunnel *t)
{
	json_t *a = json_array();
	size_t *conns = calloc(t->n_pods + 1, sizeof(*conns)), i = 0;

	if (!conns) {
		json_decref(a);
		return NULL;
	}
	workers_isolate(t);
	for (const struct pod *p = t->pods; p; p = p->next)
		conns[i++] = pod_conn_count(p);
	workers_release(t);
	i = 0;
	for (const struct pod *p = t->pods; a && p; p = p->next) {
		json_t *o = pod_to_json(p);
		size_t n = conns[i++];

		if (!o)
			continue;
		json_object_set_new(o, "connections", json_integer((json_int_t)n));
		json_object_set_new(o, "state", json_string(p->listening ? "ready" : "pending"));
		json_array_append_new(a, o);
	}
	free(conns);
	return a;
}

/*
 * GET /connections in two steps: rows copied with the workers isolated (a
 * connection may end once they run again), then the JSON built while they
 * run (for thousands of connections that is the slow part). Pods, whose
 * names the rows point at, are added and removed only by this thread.
 */
struct conn_row {
	const struct pod *pod;
	bool outbound, hbone;
	char src[64], dst[64], target[64];
	char *src_id, *dst_id; /* NULL: none (or out of memory) */
	uint64_t age_ms, sent, received;
};

static void admin_conn_rows_free(struct conn_row *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++) {
		free(rows[i].src_id);
		free(rows[i].dst_id);
	}
	free(rows);
}

static char *admin_id_dup(const char *id)
{
	return id && *id ? strdup(id) : NULL;
}

/* Worker w's shards' connections appended to *rows (*n of them so far),
 * with that worker alone paused. false: out of memory. */
static bool admin_conn_rows_of(struct tunnel *t, unsigned w, struct conn_row **rows, size_t *n)
{
	uint64_t now = loop_now_ms();
	size_t i = *n, more = 0;
	struct conn_row *grown;
	bool ok = true;

	worker_isolate(t, w); /* its connections */
	for (const struct pod *p = t->pods; p; p = pod_shard_next(p))
		if (p->worker == w)
			more += p->n_conns;
	grown = more ? realloc(*rows, (i + more) * sizeof(**rows)) : *rows;
	if (more && !grown) {
		ok = false;
		goto out;
	}
	*rows = grown;
	if (more) /* grown may be NULL: no row yet and none to add */
		memset(grown + i, 0, more * sizeof(*grown));
	for (const struct pod *p = t->pods; p; p = pod_shard_next(p)) {
		char own[SPIFFE_ID_MAX];

		if (p->worker != w)
			continue;
		mtls_pod_identity(p, own, sizeof(own));
		for (const struct conn *c = p->conns; c && i < *n + more; c = c->next, i++) {
			struct conn_row *r = &(*rows)[i];
			struct relay_stats st;

			conn_get_stats(c, &st);
			r->pod = p;
			r->outbound = c->dir == CONN_OUTBOUND;
			r->hbone = c->hbone;
			sockaddr_str(&c->src, r->src, sizeof(r->src));
			sockaddr_str(&c->dst, r->dst, sizeof(r->dst));
			if (c->route.target.ss_family)
				sockaddr_str(&c->route.target, r->target, sizeof(r->target));
			else
				memcpy(r->target, r->dst, sizeof(r->target));
			if (c->hbone) {
				r->src_id = admin_id_dup(r->outbound ? own : c->route.peer_id);
				r->dst_id = admin_id_dup(r->outbound ? c->route.peer_id : own);
			}
			r->age_ms = now - c->start_ms;
			r->sent = st.a_to_b;
			r->received = st.b_to_a;
		}
	}
	*n = i;
out:
	worker_release(t, w);
	return ok;
}

/* NULL with *n 0 when there is none; NULL with *n SIZE_MAX: out of memory.
 * One worker paused at a time: the others' data path runs meanwhile. */
static struct conn_row *admin_conn_rows(struct tunnel *t, size_t *n)
{
	struct conn_row *rows = NULL;

	*n = 0;
	for (unsigned w = 0; w < (t->n_workers ? t->n_workers : 1); w++) {
		if (!admin_conn_rows_of(t, w, &rows, n)) {
			admin_conn_rows_free(rows, *n);
			*n = SIZE_MAX;
			return NULL;
		}
	}
	return rows;
}

static json_t *admin_conn_rows_json(const struct conn_row *rows, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		const struct conn_row *r = &rows[i];

		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:I,s:I,s:I,s:I}",
			"pod", r->pod->name, "namespace", r->pod->namespace,
			"direction", r->outbound ? "outbound" : "inbound",
			"src", r->src, "dst", r->dst, "target", r->target,
			"security", r->hbone ? "mutual_tls" : "none",
			"srcIdentity", r->src_id ? json_string(r->src_id) : json_null(),
			"dstIdentity", r->dst_id ? json_string(r->dst_id) : json_null(),
			"ageMs", (json_int_t)r->age_ms,
			"sentBytes", (json_int_t)r->sent, "receivedBytes", (json_int_t)r->received,
			"worker", (json_int_t)r->pod->worker));
	}
	return a;
}

static json_t *admin_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *admin_ips_json(const struct mesh_ip *ips, size_t n)
{
	json_t *a = json_array();
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(mesh_ip_str(&ips[i], buf, sizeof(buf))));
	return a ? a : json_array();
}

static json_t *admin_labels_json(const struct mesh_labels *l)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < l->n; i++)
		json_object_set_new(o, l->items[i].key, json_string(l->items[i].value));
	return o ? o : json_object();
}

static bool admin_pod_captured(const struct tunnel *t, const struct mesh_pod *mp)
{
	for (const struct pod *p = t->pods; p; p = p->next)
		if ((*mp->uid && !strcmp(p->uid, mp->uid)) ||
		    (!strcmp(p->namespace, mp->namespace) && !strcmp(p->name, mp->name)))
			return true;
	return false;
}

/* The mesh model's pods: who they are, whether the mesh enrolls them, and
 * whether this node's tunnel serves them. */
static json_t *admin_workloads_json(const struct tunnel *t)
{
	const struct mesh *m = tunnel_model(t);
	json_t *a = json_array();

	for (size_t i = 0; a && m && i < m->n_pods; i++) {
		const struct mesh_pod *mp = &m->pods[i];
		const char *reason = "";
		bool enrolled = mesh_pod_enrolled(m, mp->namespace, mp->name, &reason);

		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:b,s:b,s:s,s:b,s:b,s:b,s:o}",
			"namespace", mp->namespace, "name", mp->name, "uid", mp->uid,
			"workload", metrics_workload_name(mp), "ips", admin_ips_json(mp->ips, mp->n_ips),
			"node", mp->node, "serviceAccount", mp->service_account,
			"hostNetwork", mp->host_network, "ready", mp->ready,
			"enrolledReason", reason ? reason : "", "enrolled", enrolled,
			"local", *mp->node && !strcmp(mp->node, t->conf->node),
			"captured", admin_pod_captured(t, mp), "labels", admin_labels_json(&mp->labels)));
	}
	return a;
}

/* The mesh model's services; endpoints are the ready pods of the
 * service's namespace that its selector matches (Kubernetes semantics). */
static json_t *admin_services_json(const struct tunnel *t)
{
	const struct mesh *m = tunnel_model(t);
	json_t *a = json_array();

	for (size_t i = 0; a && m && i < m->n_services; i++) {
		const struct mesh_service *s = &m->services[i];
		const struct mesh_pod *mp;
		json_t *ports = json_array(), *eps = json_array();

		for (size_t k = 0; ports && k < s->n_ports; k++) {
			const struct mesh_service_port *sp = &s->ports[k];
			json_t *tp = sp->target_port_name ? json_string(sp->target_port_name)
							  : json_integer(sp->target_port ? sp->target_port : sp->port);

			json_array_append_new(ports, json_pack("{s:s,s:s,s:i,s:o}", "name", sp->name,
				"protocol", sp->protocol, "port", (int)sp->port, "targetPort", tp));
		}
		for (size_t e = 0; eps && e < s->n_endpoints; e++) {
			const struct mesh_endpoint *ep = &s->endpoints[e];
			json_t *tports;
			char key[8];

			if (!ep->ready)
				continue;
			tports = json_object();
			/* a Service without a selector: its EndpointSlices' addresses */
			for (size_t k = 0; tports && k < s->n_ports; k++) {
				snprintf(key, sizeof(key), "%u", s->ports[k].port);
				if (ep->ports && ep->ports[k])
					json_object_set_new(tports, key, json_integer(ep->ports[k]));
			}
			json_array_append_new(eps, json_pack("{s:s?,s:s?,s:o,s:s?,s:o}", "namespace",
				ep->pod ? ep->pod->namespace : NULL, "name", ep->pod ? ep->pod->name : NULL,
				"ips", admin_ips_json(&ep->ip, 1), "node", ep->pod ? ep->pod->node : NULL,
				"ports", tports ? tports : json_object()));
		}
		for (size_t pos = 0; eps && (mp = mesh_service_next_pod(m, s, &pos));) {
			json_t *tports;
			char key[8];

			if (!mp->ready)
				continue;
			tports = json_object();
			/* service port -> the port this pod serves it on; a named
			 * targetPort the pod lacks is absent, as in EndpointSlices */
			for (size_t k = 0; tports && k < s->n_ports; k++) {
				uint16_t tp = mesh_pod_target_port(mp, &s->ports[k]);

				snprintf(key, sizeof(key), "%u", s->ports[k].port);
				if (tp)
					json_object_set_new(tports, key, json_integer(tp));
			}
			json_array_append_new(eps, json_pack("{s:s,s:s,s:o,s:s,s:o}", "namespace",
				mp->namespace, "name", mp->name, "ips", admin_ips_json(mp->ips, mp->n_ips),
				"node", mp->node, "ports", tports ? tports : json_object()));
		}
		json_array_append_new(a, json_pack("{s:s,s:s,s:s+++,s:o,s:o,s:o,s:o,s:o}",
			"namespace", s->namespace, "name", s->name,
			"hostname", s->name, ".", s->namespace, ".svc.cluster.local",
			"vips", admin_ips_json(s->vips, s->n_vips),
			"ports", ports ? ports : json_array(), "selector", admin_labels_json(&s->selector),
			"waypoint", admin_str_or_null(mesh_label(&s->labels, "istio.io/use-waypoint")),
			"endpoints", eps ? eps : json_array()));
	}
	return a;
}

static void admin_respond_metrics(struct http_response *resp, struct tunnel *t)
{
	char *body = metrics_render(t);

	if (!body)
		admin_respond_text(resp, 500, "out of memory rendering metrics\n");
	else
		admin_respond(resp, 200, body, PROM_CTYPE);
}

static json_t *admin_config_dump(struct tunnel *t)
{
	const struct tunnel_conf *c = t->conf;
	const char *reason;
	bool ready = tunnel_ready(t, &reason);
	json_t *conf, *mesh;

	conf = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:s,s:i}",
			 "node", admin_str_or_null(c->node), "pluginSocket", admin_str_or_null(c->plugin_socket),
			 "stateDir", admin_str_or_null(c->state_dir), "meshPath", admin_str_or_null(c->mesh_path),
			 "adminAddress", admin_str_or_null(c->admin_address),
			 "adminSocket", admin_str_or_null(c->admin_socket),
			 "metricsAddress", admin_str_or_null(c->metrics_address),
			 "readinessAddress", admin_str_or_null(c->readiness_address),
			 "logFile", admin_str_or_null(c->log_file), "trustDomain", admin_str_or_null(c->trust_domain),
			 "logLevel", wlog_level_name(wlog_get_level()), "meshReloadMs", c->mesh_reload_ms);
	if (conf) {
		json_object_set_new(conf, "accessLog", admin_str_or_null(c->access_log));
		json_object_set_new(conf, "clusterId", admin_str_or_null(c->cluster_id));
		json_object_set_new(conf, "caDir", admin_str_or_null(c->ca_dir));
		json_object_set_new(conf, "caAddress", admin_str_or_null(c->ca_address));
		json_object_set_new(conf, "trustBundle", admin_str_or_null(c->trust_bundle));
		json_object_set_new(conf, "mtls", json_boolean(t->sec != NULL));
		json_object_set_new(conf, "certLifetimeSeconds", json_integer(c->cert_lifetime_s));
		json_object_set_new(conf, "rootNamespace", admin_str_or_null(c->root_namespace));
		json_object_set_new(conf, "poolMaxStreams", json_integer(c->pool_max_streams));
		json_object_set_new(conf, "poolIdleTimeoutMs", json_integer(c->pool_idle_timeout_ms));
		json_object_set_new(conf, "hbonePingIntervalMs", json_integer(c->hbone_ping_interval_ms));
		json_object_set_new(conf, "workerThreads", json_integer(c->worker_threads));
		json_object_set_new(conf, "hostProbeSnat", json_boolean(c->host_probe_snat));
		json_object_set_new(conf, "kubeletUid",
				    c->kubelet_uid >= 0 ? json_integer(c->kubelet_uid) : json_null());
		json_object_set_new(conf, "drainSeconds", json_integer(c->drain_seconds));
		json_object_set_new(conf, "meshSource", admin_str_or_null(c->mesh_source));
		json_object_set_new(conf, "kubeconfig", admin_str_or_null(c->kubeconfig));
	}
	mesh = json_pack("{s:b,s:I,s:I,s:o,s:I,s:I,s:I}", "loaded", tunnel_model(t) != NULL,
			 "generation", (json_int_t)tunnel_generation(t),
			 "reloadErrors", (json_int_t)t->mesh_reload_errors,
			 "lastError", t->mesh_error[0] ? json_string(t->mesh_error) : json_null(),
			 "namespaces", (json_int_t)(tunnel_model(t) ? tunnel_model(t)->n_namespaces : 0),
			 "pods", (json_int_t)(tunnel_model(t) ? tunnel_model(t)->n_pods : 0),
			 "services", (json_int_t)(tunnel_model(t) ? tunnel_model(t)->n_services : 0));
	return json_pack("{s:s,s:I,s:o,s:o,s:o,s:I,s:b,s:s,s:o,s:o}", "version", WARREN_VERSION,
			 "pid", (json_int_t)getpid(),
			 "config", conf ? conf : json_null(), "pods", admin_pods_json(t),
			 "mesh", mesh ? mesh : json_null(),
			 "meshGeneration", (json_int_t)tunnel_generation(t), "ready", ready,
			 "readyReason", reason, "hostProbe", host_probe_json(t),
			 "kubernetes", kube_tunnel_json(t));
}

static void admin_handle_logging(struct http_response *resp, const struct http_request *req, bool post)
{
	char lv[32];
	int n = http_query_arg(req->query, req->query_len, "level", lv, sizeof(lv));
	enum wlog_level level;

	if (post) {
		if (n < 0 || wlog_parse_level(lv, &level) < 0) {
			admin_respond_text(resp, 400, "bad or missing level \"%s\"; use ?level=error|warn|info|debug\n",
				     n < 0 ? "" : lv);
			return;
		}
		wlog_set_level(level);
		log_info("log level set to %s via the admin API", wlog_level_name(level));
	}
	admin_respond_json(resp, 200, json_pack("{s:s}", "level", wlog_level_name(wlog_get_level())));
}

/* Request bodies are ignored. */
static void admin_handle(void *ctx, const struct http_request *req, struct http_response *resp)
{
	struct http_srv *srv = ctx;
	struct tunnel *t;
	const char *url = req->path, *method = req->method, *reason;
	/* A JSON answer is built, or finished, while the workers run:
	 * J_READY from j (NULL: out of memory, a 500), J_CONNS from rows,
	 * J_WORKLOADS and J_SERVICES from the published model. */
	enum { J_NONE, J_READY, J_CONNS, J_WORKLOADS, J_SERVICES } json = J_NONE;
	json_t *j = NULL;
	struct conn_row *rows = NULL;
	size_t n_rows = 0;
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	bool post = !strcmp(method, "POST") || !strcmp(method, "PUT");

	CHECK_OBJ(srv, SRV_MAGIC);
	t = srv->t;
	if (!strcmp(url, "/healthz/ready") && get) {
		if (tunnel_ready(t, &reason))
			admin_respond_text(resp, 200, "ready\n");
		else
			admin_respond_text(resp, 503, "not ready: %s\n", reason);
	} else if ((!strcmp(url, "/metrics") || !strcmp(url, "/stats/prometheus")) && get &&
		   srv->kind != SRV_READINESS) {
		admin_respond_metrics(resp, t);
	} else if (srv->kind == SRV_READINESS) {
		admin_respond_text(resp, 404, "not found; this port serves GET /healthz/ready\n");
	} else if (srv->kind == SRV_METRICS) {
		admin_respond_text(resp, 404, "not found; this port serves GET /metrics and /stats/prometheus\n");
	} else if (srv->kind == SRV_ADMIN_TCP &&
		   (!strcmp(url, "/certs") || !strcmp(url, "/config_dump") ||
		    (!strcmp(url, "/logging") && post))) {
		admin_respond_text(resp, 403,
			     "forbidden: %s %s is served on the admin Unix socket (adminSocket) only; adminAddress is read-only\n",
			     method, url);
	} else if (!strcmp(url, "/pods") && get) {
		j = admin_pods_json(t);
		json = J_READY;
	} else if ((!strcmp(url, "/workloads") || !strcmp(url, "/services")) && get) {
		if (!tunnel_model(t)) {
			admin_respond_text(resp, 503, "mesh model not loaded yet (%s); see the warren-tunnel log\n",
				     t->mesh_error[0] ? t->mesh_error : "no load finished");
		} else {
			json = url[1] == 'w' ? J_WORKLOADS : J_SERVICES;
		}
	} else if (!strcmp(url, "/connections") && get) {
		rows = admin_conn_rows(t, &n_rows);
		if (n_rows == SIZE_MAX)
			admin_respond_text(resp, 500, "out of memory listing connections\n");
		else
			json = J_CONNS;
	} else if (!strcmp(url, "/certs") && get) {
		j = mtls_certs_json(t);
		json = J_READY;
	} else if (!strcmp(url, "/policies") && get) {
		j = mtls_policies_json(t);
		json = J_READY;
	} else if (!strcmp(url, "/state_records") && get) {
		j = state_bad_records_json(t);
		json = J_READY;
	} else if (!strcmp(url, "/pool") && get) {
		j = mtls_pool_json(t);
		json = J_READY;
	} else if (!strcmp(url, "/config_dump") && get) {
		j = admin_config_dump(t);
		json = J_READY;
	} else if (!strcmp(url, "/logging") && (get || post)) {
		admin_handle_logging(resp, req, post);
	} else {
		admin_respond_text(resp, 404,
			     "not found: %s %s; endpoints: GET /pods, GET /workloads, GET /services, GET /connections, GET /certs, GET /policies, GET /pool, GET /state_records, GET /config_dump, GET|POST /logging[?level=LEVEL], GET /healthz/ready, GET /stats/prometheus\n",
			     method, url);
	}
	if (json != J_NONE) {
		/* What is left reads only our own copies (or the published
		 * model, which only this thread replaces): built and
		 * serialized while the worker threads run. */
		if (json == J_CONNS) {
			j = admin_conn_rows_json(rows, n_rows);
			admin_conn_rows_free(rows, n_rows);
		} else if (json == J_WORKLOADS) {
			j = admin_workloads_json(t); /* the model is swapped only by this thread */
		} else if (json == J_SERVICES) {
			j = admin_services_json(t);
		}
		admin_respond_json(resp, 200, j);
	}
}

static int admin_listen_tcp(const char *addr, const char *what)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
	struct addrinfo *ai = NULL;
	char host[256];
	const char *port;
	int fd = -1, one = 1, ret;
	size_t hl;

	port = strrchr(addr, ':');
	if (!port || port == addr)
		goto bad;
	if (addr[0] == '[') {
		if (port[-1] != ']')
			goto bad;
		hl = (size_t)(port - addr) - 2;
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, addr + 1, hl);
	} else {
		hl = (size_t)(port - addr);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, addr, hl);
	}
	host[hl] = '\0';
	port++;
	ret = getaddrinfo(host, port, &hints, &ai);
	if (ret)
		goto bad;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* SO_REUSEPORT: a successor binds beside us during a rollout (drain.c) */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		ret = -errno;
		log_error("cannot listen on %s address %s: %s", what, addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return ret;
	}
	freeaddrinfo(ai);
	return fd;
bad:
	log_error("bad %s address \"%s\": want IP:PORT or [IPv6]:PORT", what, addr);
	if (ai)
		freeaddrinfo(ai);
	return -EINVAL;
}

static int admin_listen_unix(const char *path, struct admin *a)
{
	struct stat st;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *dir;
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_error("adminSocket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	/* The default's directory (/var/run/warren) may not exist yet. */
	dir = strrchr(sun.sun_path, '/');
	if (dir && dir != sun.sun_path) {
		*dir = '\0';
		if (mkdir(sun.sun_path, 0755) < 0 && errno != EEXIST)
			log_warn("cannot create the adminSocket directory %s: %s", sun.sun_path, strerror(errno));
		*dir = '/';
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	old = umask(0177);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0 || stat(path, &st) < 0) {
		ret = -errno;
		log_error("cannot listen on adminSocket %s: %s", path, strerror(errno));
		close(fd);
		return ret;
	}
	a->sock_dev = st.st_dev;
	a->sock_ino = st.st_ino;
	return fd;
}

static void admin_srv_paused(void *ctx)
{
	static const char *const metric_name[] = { "admin", "readiness", "metrics", "admin" };
	struct http_srv *srv = ctx;

	CHECK_OBJ(srv, SRV_MAGIC);
	metrics_accept_paused(srv->t, metric_name[srv->kind]);
}

static int admin_srv_start(struct tunnel *t, int lfd, enum srv_kind kind, const char *where)
{
	struct admin *a = t->admin;
	struct http_srv *srv = &a->srv[a->n];
	char name[300];
	int ret;

	assert(a->n < SRV_MAX);
	*srv = (struct http_srv){ .magic = SRV_MAGIC, .t = t, .kind = kind };
	snprintf(name, sizeof(name), "%s on %s", admin_srv_kind_name[kind], where);
	ret = http_server_new(t->loop, lfd, name, admin_handle, srv, &srv->hs);
	if (ret < 0) {
		log_error("cannot start the HTTP server on %s: %s", where, strerror(-ret));
		return ret;
	}
	http_server_on_pause(srv->hs, admin_srv_paused, srv);
	a->n++;
	log_info("%s listening on %s", admin_srv_kind_name[kind], where);
	return 0;
}

/* A successor bound adminSocket anew (drain.c): it also shares our
 * readiness port (SO_REUSEPORT), so a kubelet's probe of either pod reaches
 * either process, and ours would answer for the successor's pod: "ready"
 * before it has its model, pods and certificates, or "draining" once we
 * were told to stop. From now on the port is the successor's alone. */
static void admin_successor_check(struct loop *l, void *ctx)
{
	struct tunnel *t = ctx;
	struct admin *a = t->admin;
	struct stat st;

	a->succ_timer = NULL;
	if (stat(t->conf->admin_socket, &st) < 0 || (st.st_dev == a->sock_dev && st.st_ino == a->sock_ino)) {
		a->succ_timer = loop_timer_add(l, ADMIN_SUCCESSOR_CHECK_MS, admin_successor_check, t);
		return;
	}
	for (int i = 0; i < a->n; i++) {
		if (a->srv[i].kind != SRV_READINESS || !a->srv[i].hs)
			continue;
		http_server_free(a->srv[i].hs);
		a->srv[i].hs = NULL;
		log_info("a successor took adminSocket %s over: readiness is left to it (a probe of our pod, "
			 "on the shared port, now reports the successor's state)", t->conf->admin_socket);
	}
}

int admin_start(struct tunnel *t)
{
	const struct tunnel_conf *c = t->conf;
	const char *aa = c->admin_address ? c->admin_address : "off";
	const char *as = c->admin_socket ? c->admin_socket : "off";
	const char *ra = c->readiness_address ? c->readiness_address : "0.0.0.0:15021";
	const char *ma = c->metrics_address ? c->metrics_address : "0.0.0.0:15020";
	int fd, ret;

	t->admin = calloc(1, sizeof(*t->admin));
	if (!t->admin)
		return -ENOMEM;
	if (*as && strcmp(as, "off")) {
		fd = admin_listen_unix(as, t->admin);
		if (fd < 0)
			return fd;
		ret = admin_srv_start(t, fd, SRV_ADMIN, as);
		if (ret < 0)
			return ret;
	}
	if (strcmp(aa, "off")) {
		fd = admin_listen_tcp(aa, "adminAddress");
		if (fd < 0)
			return fd;
		ret = admin_srv_start(t, fd, SRV_ADMIN_TCP, aa);
		if (ret < 0)
			return ret;
	}
	if (strcmp(ma, "off")) {
		fd = admin_listen_tcp(ma, "metricsAddress");
		if (fd < 0)
			return fd;
		ret = admin_srv_start(t, fd, SRV_METRICS, ma);
		if (ret < 0)
			return ret;
	}
	if (!strcmp(ra, "off"))
		return 0;
	fd = admin_listen_tcp(ra, "readinessAddress");
	if (fd < 0)
		return fd;
	ret = admin_srv_start(t, fd, SRV_READINESS, ra);
	if (ret == 0 && t->admin->sock_ino)
		t->admin->succ_timer = loop_timer_add(t->loop, ADMIN_SUCCESSOR_CHECK_MS, admin_successor_check, t);
	return ret;
}

void admin_stop(struct tunnel *t)
{
	struct admin *a = t->admin;

	if (!a)
		return;
	if (a->succ_timer)
		loop_timer_cancel(t->loop, a->succ_timer);
	for (int i = 0; i < a->n; i++) {
		http_server_free(a->srv[i].hs);
		a->srv[i].magic = 0;
	}
	if (a->sock_ino) {
		struct stat st;

		/* Only our own file: a successor's stays (drain.c). */
		if (stat(t->conf->admin_socket, &st) == 0 && st.st_dev == a->sock_dev &&
		    st.st_ino == a->sock_ino)
			unlink(t->conf->admin_socket);
	}
	free(a);
	t->admin = NULL;
}
