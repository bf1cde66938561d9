/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics registry and the per-connection observation (contract in
 * tunnel/metrics.h).
 *
 * Istio TCP series live in a hash table keyed by their rendered label
 * string, and in a list in creation order (stable output). A series is
 * never freed before the registry: counters must not go backwards while
 * the process lives. Each connection keeps a struct conn_obs with its
 * label set (the values copied: the mesh model may be swapped while it
 * lives), its series, and how many of its relay's bytes are already
 * counted, so a scrape can add just the difference.
 *
 * Label sets are shared: connections whose route names the same model
 * objects (same model generation, direction, local pod, peer, Service,
 * identities) have the same labels, so the registry keeps the last
 * OBS_MEMO sets made in a small table and a new connection takes a
 * reference to its set instead of copying every value, rendering the
 * label string and looking its series up again (docs/performance.md).
 *
 * Peers are looked up in the mesh model by IP. Naming follows Istio:
 * workload = app.kubernetes.io/name or app label, else the pod name;
 * canonical service/revision from service.istio.io/canonical-* labels,
 * then app/version labels; "unknown" for anything not in the model.
 */
#include "tunnel/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/log.h"
#include "conf/warren.h"
#include "tunnel/accesslog.h"
#include "tunnel/kube_tunnel.h"
#include "tunnel/loop.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/relay.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

#define HASH_BUCKETS 1024
#define OBS_MEMO 64
#define UNKNOWN "unknown"

/* Istio's TCP label set, in Istio's order. */
enum lbl {
	L_REPORTER,
	L_SRC_WORKLOAD, L_SRC_CANON_SVC, L_SRC_CANON_REV, L_SRC_NS, L_SRC_PRINCIPAL,
	L_SRC_APP, L_SRC_VERSION, L_SRC_CLUSTER,
	L_DST_SERVICE, L_DST_SERVICE_NS, L_DST_SERVICE_NAME,
	L_DST_WORKLOAD, L_DST_CANON_SVC, L_DST_CANON_REV, L_DST_NS, L_DST_PRINCIPAL,
	L_DST_APP, L_DST_VERSION, L_DST_CLUSTER,
	L_PROTOCOL, L_FLAGS, L_SECURITY,
	L_COUNT
};

static const char *const metrics_lbl_name[L_COUNT] = {
	"reporter",
	"source_workload", "source_canonical_service", "source_canonical_revision",
	"source_workload_namespace", "source_principal", "source_app", "source_version",
	"source_cluster",
	"destination_service", "destination_service_namespace", "destination_service_name",
	"destination_workload", "destination_canonical_service", "destination_canonical_revision",
	"destination_workload_namespace", "destination_principal", "destination_app",
	"destination_version", "destination_cluster",
	"request_protocol", "response_flags", "connection_security_policy",
};

/* Offsets of a peer's labels from L_SRC_WORKLOAD / L_DST_WORKLOAD. */
struct peer_lbl {
	enum lbl workload, canon_svc, canon_rev, ns, principal, app, version, cluster;
};
static const struct peer_lbl METRICS_SRC = { L_SRC_WORKLOAD, L_SRC_CANON_SVC, L_SRC_CANON_REV, L_SRC_NS,
				     L_SRC_PRINCIPAL, L_SRC_APP, L_SRC_VERSION, L_SRC_CLUSTER };
static const struct peer_lbl METRICS_DST = { L_DST_WORKLOAD, L_DST_CANON_SVC, L_DST_CANON_REV, L_DST_NS,
				     L_DST_PRINCIPAL, L_DST_APP, L_DST_VERSION, L_DST_CLUSTER };

struct tcp_series {
	struct tcp_series *hnext, *next;
	uint64_t opened, closed, sent, received;
	char labels[];
};

struct gseries {
	struct gseries *next;
	int64_t value;
	char labels[];
};

enum fam_id { F_PLUGIN, F_HANDSHAKES, F_DENIALS, F_CERT, F_POOL_CONNS, F_POOL_STREAMS, F_CSR, F_CSR_US,
	      F_ACCEPT_PAUSED, F_HBONE_REFUSED, F_STATE_BAD, F_STATE_READOPT, F_WAYPOINT_REFUSED, F_COUNT };

struct family {
	const char *name, *type, *help;
	struct gseries *series;
	size_t n;
};

/* Workers and the main thread update series side by side, so mu guards
 * the series and the families. A connection's own counters (struct
 * conn_obs) are its worker's: the scrape reads them with the workers
 * isolated (workers.h). */
/* One connection's labels, shared by reference (under metrics->mu when
 * memoised; a registry-less observation owns its own). The key: what
 * metrics_fill_labels() reads. */
struct obs_lset {
	unsigned refs;
	uint64_t generation;
	int dir;
	bool mtls;
	const void *local, *peer, *svc;
	char *src_principal, *dst_principal; /* copies, NULL plaintext */
	char *pod_ns, *pod_name;             /* copies, only without local */
	char *lv[L_COUNT];
	struct tcp_series *series;           /* response_flags "-", or NULL */
	/* The access log's names of these labels, rendered once (NULL: log
	 * off, or ENOMEM: the line then takes the strings). */
	struct accesslog_names *alnames;
};

struct metrics {
	pthread_mutex_t mu;
	struct obs_lset *memo[OBS_MEMO];
	struct tcp_series *bucket[HASH_BUCKETS];
	struct tcp_series *all, **tail;
	size_t n_series;
	uint64_t dropped;
	struct family fam[F_COUNT];
};

struct conn_obs {
	bool opened;
	bool mtls;
	int policy; /* 0 none, 1 allow, 2 deny */
	int64_t start_unix_ms;
	struct tcp_series *series;
	uint64_t acct_ab, acct_ba; /* relay bytes already counted */
	struct obs_lset *ls;       /* set at open */
	char *src_principal, *dst_principal, *policy_name;
};

static const struct family metrics_fam_init[F_COUNT] = {
	[F_PLUGIN] = { "warren_plugin_requests_total", "counter",
		       "Handoff requests from warren-cni, by operation and result." },
	[F_HANDSHAKES] = { "warren_handshakes_total", "counter",
			   "mTLS handshakes, by result and failure reason." },
	[F_DENIALS] = { "warren_policy_denials_total", "counter",
			"Connections denied by AuthorizationPolicy, by policy (namespace/name)." },
	[F_CERT] = { "warren_certificate_expiry_seconds", "gauge",
		     "Expiry of the workload certificate held for an identity (Unix time, seconds)." },
	[F_POOL_CONNS] = { "warren_pool_connections", "gauge",
			   "HBONE connections in the outbound pool." },
	[F_POOL_STREAMS] = { "warren_pool_streams", "gauge",
			     "HBONE streams (tunnelled connections) over the pooled connections." },
	[F_CSR] = { "warren_ca_csr_total", "counter",
		    "Certificate requests to warren-ca, by result (ok, refused, unavailable)." },
	[F_CSR_US] = { "warren_ca_csr_duration_microseconds_total", "counter",
		       "Time spent in certificate requests to warren-ca, by result (divide by "
		       "warren_ca_csr_total for the mean)." },
	[F_ACCEPT_PAUSED] = { "warren_accept_paused_total", "counter",
			      "Times a listener stopped accepting for a while because the process was out of file descriptors or memory, by listener." },
	[F_HBONE_REFUSED] = { "warren_hbone_refused_total", "counter",
			      "Connections to a pod's 15008 closed before their TLS handshake because too many handshakes were pending, by limit." },
	[F_STATE_BAD] = { "warren_state_records_bad_total", "counter",
			  "State records that could not be read at start and were moved aside." },
	[F_STATE_READOPT] = { "warren_state_records_readopt_total", "counter",
			      "Pods of state records moved aside, by what became of them: re-adopted from their netns, or refused (left failed closed)." },
	[F_WAYPOINT_REFUSED] = { "warren_waypoint_refused_total", "counter",
				 "Connections refused for a waypoint's sake, by waypoint (namespace/name) and reason: missing, not_ready (source side: the destination is bound to a waypoint that cannot take it), bypass (destination side: HBONE not from the waypoint)." },
};

int metrics_new(struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->mu, NULL);
	m->tail = &m->all;
	for (int i = 0; i < F_COUNT; i++)
		m->fam[i] = metrics_fam_init[i];
	*out = m;
	return 0;
}

static void metrics_lset_unref(struct obs_lset *ls);

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (int i = 0; i < OBS_MEMO; i++)
		metrics_lset_unref(m->memo[i]);
	for (struct tcp_series *s = m->all, *n; s; s = n) {
		n = s->next;
		free(s);
	}
	for (int i = 0; i < F_COUNT; i++)
		for (struct gseries *g = m->fam[i].series, *n; g; g = n) {
			n = g->next;
			free(g);
		}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* ---- label text ---- */

/* Prometheus label-value escaping: the two-byte replacement for c, or
 * NULL when c stands as it is. */
static const char *metrics_prom_escape(char c)
{
	return c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : NULL;
}

/* Label text is built per connection, so not through stdio: a growing
 * heap buffer, one allocation in the common case. err latches ENOMEM. */
struct lbuf {
	char *s;
	size_t n, cap;
	bool err;
};

static void metrics_lb_put(struct lbuf *b, const char *p, size_t n)
{
	if (b->err)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		char *s;

		while (b->n + n + 1 > cap)
			cap *= 2;
		s = realloc(b->s, cap);
		if (!s) {
			b->err = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->n, p, n);
	b->n += n;
	b->s[b->n] = '\0';
}

/* name="value" with Prometheus escaping, comma-separated after the first. */
static void metrics_lb_label(struct lbuf *b, const char *name, const char *v)
{
	if (b->n)
		metrics_lb_put(b, ",", 1);
	metrics_lb_put(b, name, strlen(name));
	metrics_lb_put(b, "=\"", 2);
	for (const char *run = v; ; v++) {
		const char *rep = metrics_prom_escape(*v);

		if (!rep && *v)
			continue;
		metrics_lb_put(b, run, (size_t)(v - run));
		if (!*v)
			break;
		metrics_lb_put(b, rep, 2);
		run = v + 1;
	}
	metrics_lb_put(b, "\"", 1);
}

/* The text, malloc'd (the caller frees), or NULL on ENOMEM. */
static char *metrics_lb_done(struct lbuf *b)
{
	if (b->err) {
		free(b->s);
		return NULL;
	}
	return b->s ? b->s : strdup("");
}

const char *metrics_escape(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return buf;
	for (; s && *s; s++) {
		const char *rep = metrics_prom_escape(*s);
		size_t n = rep ? 2 : 1;

		if (o + n >= len)
			break;
		if (rep)
			memcpy(buf + o, rep, 2);
		else
			buf[o] = *s;
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

/* name="value",... for NULL-terminated name/value pairs; malloc'd. */
static char *metrics_labels_fmt(const char *name, ...)
{
	struct lbuf b = { 0 };
	va_list ap;

	va_start(ap, name);
	for (; name; name = va_arg(ap, const char *)) {
		const char *v = va_arg(ap, const char *);

		metrics_lb_label(&b, name, v ? v : UNKNOWN);
	}
	va_end(ap);
	return metrics_lb_done(&b);
}

/* ---- generic families ---- */

static struct gseries *metrics_gs_find(struct family *f, const char *labels, bool create)
{
	struct gseries *g, **pp = &f->series;
	size_t n;

	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->labels, labels))
			return *pp;
	if (!create || f->n >= METRICS_MAX_SERIES)
		return NULL;
	n = strlen(labels);
	g = calloc(1, sizeof(*g) + n + 1);
	if (!g)
		return NULL;
	memcpy(g->labels, labels, n + 1);
	*pp = g;
	f->n++;
	return g;
}

static void metrics_fam_update(struct tunnel *t, enum fam_id id, char *labels, bool set, int64_t v)
{
	struct gseries *g;

	if (labels && t && t->metrics) {
		pthread_mutex_lock(&t->metrics->mu);
		g = metrics_gs_find(&t->metrics->fam[id], labels, true);
		if (g)
			g->value = set ? v : g->value + v;
		pthread_mutex_unlock(&t->metrics->mu);
	}
	free(labels);
}

void metrics_plugin_request(struct tunnel *t, const char *op, bool ok)
{
	static const char *const ops[] = { "query", "add", "del", "check", "status", "gc" };
	const char *o = "other";

	if (!t || !t->metrics)
		return;
	for (size_t i = 0; op && i < ARRAY_SIZE(ops); i++)
		if (!strcmp(op, ops[i]))
			o = ops[i];
	metrics_fam_update(t, F_PLUGIN, metrics_labels_fmt("op", o, "result", ok ? "ok" : "error", NULL), false, 1);
}

void metrics_handshake(struct tunnel *t, bool ok, const char *reason)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_HANDSHAKES,
		   metrics_labels_fmt("result", ok ? "ok" : "error", "reason", reason ? reason : (ok ? "ok" : UNKNOWN),
			      NULL),
		   false, 1);
}

void metrics_policy_denial(struct tunnel *t, const char *policy)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_DENIALS, metrics_labels_fmt("policy", policy ? policy : "default-deny", NULL), false, 1);
}

void metrics_accept_paused(struct tunnel *t, const char *listener)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_ACCEPT_PAUSED, metrics_labels_fmt("listener", listener, NULL), false, 1);
}

void metrics_hbone_refused(struct tunnel *t, const char *reason)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_HBONE_REFUSED, metrics_labels_fmt("reason", reason, NULL), false, 1);
}

void metrics_waypoint_refused(struct tunnel *t, const char *waypoint, const char *reason)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_WAYPOINT_REFUSED, metrics_labels_fmt("waypoint", waypoint, "reason", reason, NULL),
		   false, 1);
}

void metrics_state_record_bad(struct tunnel *t)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_STATE_BAD, strdup(""), false, 1);
}

void metrics_state_record_readopt(struct tunnel *t, bool adopted)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_STATE_READOPT, metrics_labels_fmt("result", adopted ? "adopted" : "refused", NULL), false, 1);
}

void metrics_pool_set(struct tunnel *t, uint64_t connections, uint64_t streams)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_POOL_CONNS, strdup(""), true, (int64_t)connections);
	metrics_fam_update(t, F_POOL_STREAMS, strdup(""), true, (int64_t)streams);
}

void metrics_cert_expiry(struct tunnel *t, const char *identity, int64_t not_after)
{
	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_CERT, metrics_labels_fmt("identity", identity, NULL), true, not_after);
}

void metrics_csr(struct tunnel *t, int ret, double ms)
{
	const char *r = ret == 0 ? "ok" : ret == -EACCES ? "refused" : "unavailable";

	if (!t || !t->metrics)
		return;
	metrics_fam_update(t, F_CSR, metrics_labels_fmt("result", r, NULL), false, 1);
	metrics_fam_update(t, F_CSR_US, metrics_labels_fmt("result", r, NULL), false, (int64_t)(ms * 1000.0));
}

void metrics_cert_forget(struct tunnel *t, const char *identity)
{
	struct family *f;
	char *labels;

	if (!t || !t->metrics)
		return;
	f = &t->metrics->fam[F_CERT];
	labels = metrics_labels_fmt("identity", identity, NULL);
	pthread_mutex_lock(&t->metrics->mu);
	for (struct gseries **pp = &f->series; labels && *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->labels, labels))
			continue;
		struct gseries *g = *pp;

		*pp = g->next;
		free(g);
		f->n--;
		break;
	}
	pthread_mutex_unlock(&t->metrics->mu);
	free(labels);
}

/* ---- TCP series ---- */

static uint64_t metrics_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static struct tcp_series *tcp_series_get(struct metrics *m, const char *labels)
{
	uint64_t b = metrics_hash(labels) % HASH_BUCKETS;
	struct tcp_series *s;
	size_t n;

	for (s = m->bucket[b]; s; s = s->hnext)
		if (!strcmp(s->labels, labels))
			return s;
	if (m->n_series >= METRICS_MAX_SERIES) {
		if (!m->dropped++)
			log_warn("metrics: more than %d distinct Istio TCP label sets; new ones are not recorded (see warren_metrics_series_dropped_total)",
				 METRICS_MAX_SERIES);
		return NULL;
	}
	n = strlen(labels);
	s = calloc(1, sizeof(*s) + n + 1);
	if (!s)
		return NULL;
	memcpy(s->labels, labels, n + 1);
	s->hnext = m->bucket[b];
	m->bucket[b] = s;
	*m->tail = s;
	m->tail = &s->next;
	m->n_series++;
	return s;
}

static char *metrics_obs_labels(const struct obs_lset *ls, const char *flags)
{
	struct lbuf b = { 0 };

	for (int i = 0; i < L_COUNT; i++)
		metrics_lb_label(&b, metrics_lbl_name[i], i == L_FLAGS ? flags : ls->lv[i] ? ls->lv[i] : UNKNOWN);
	return metrics_lb_done(&b);
}

/* ---- peers ---- */

const char *metrics_workload_name(const struct mesh_pod *p)
{
	const char *v;

	if (!p)
		return UNKNOWN;
	v = mesh_label(&p->labels, "app.kubernetes.io/name");
	if (!v || !*v)
		v = mesh_label(&p->labels, "app");
	return v && *v ? v : p->name;
}

static const char *metrics_label_or(const struct mesh_pod *p, const char *k1, const char *k2,
			    const char *k3, const char *dflt)
{
	const char *keys[] = { k1, k2, k3 };

	for (size_t i = 0; p && i < ARRAY_SIZE(keys); i++) {
		const char *v = keys[i] ? mesh_label(&p->labels, keys[i]) : NULL;

		if (v && *v)
			return v;
	}
	return dflt;
}

static void metrics_set_lv(struct obs_lset *o, enum lbl l, const char *v)
{
	free(o->lv[l]);
	o->lv[l] = v ? strdup(v) : NULL; /* NULL renders "unknown" */
}

static void metrics_fill_peer(struct tunnel *t, struct obs_lset *o, const struct peer_lbl *pl,
		      const struct mesh_pod *mp, const char *ns, const char *name)
{
	const char *wl = mp ? metrics_workload_name(mp) : name;

	if (mp)
		ns = mp->namespace;
	metrics_set_lv(o, pl->workload, wl);
	metrics_set_lv(o, pl->ns, ns);
	metrics_set_lv(o, pl->canon_svc, mp ? metrics_label_or(mp, "service.istio.io/canonical-name",
					       "app.kubernetes.io/name", "app", wl) : wl);
	metrics_set_lv(o, pl->canon_rev, mp ? metrics_label_or(mp, "service.istio.io/canonical-revision",
					       "app.kubernetes.io/version", "version", "latest")
				    : (name ? "latest" : NULL));
	metrics_set_lv(o, pl->app, metrics_label_or(mp, "app", "app.kubernetes.io/name", NULL, NULL));
	metrics_set_lv(o, pl->version, metrics_label_or(mp, "version", "app.kubernetes.io/version", NULL, NULL));
	metrics_set_lv(o, pl->cluster, (mp || name) ? t->conf->cluster_id ? t->conf->cluster_id : "Kubernetes"
					    : NULL);
}

static void metrics_fill_service(struct obs_lset *o, const struct mesh_service *svc)
{
	char *fqdn = NULL;

	if (!svc)
		return;
	if (asprintf(&fqdn, "%s.%s.svc.cluster.local", svc->name, svc->namespace) < 0)
		fqdn = NULL;
	free(o->lv[L_DST_SERVICE]);
	o->lv[L_DST_SERVICE] = fqdn;
	metrics_set_lv(o, L_DST_SERVICE_NAME, svc->name);
	metrics_set_lv(o, L_DST_SERVICE_NS, svc->namespace);
}

/* The label values of c into o, whose key metrics_lset_key() filled. */
static void metrics_fill_labels(struct tunnel *t, struct conn *c, struct obs_lset *o)
{
	const struct route *r = &c->route;
	const struct pod *p = c->pod;

	metrics_set_lv(o, L_PROTOCOL, "tcp");
	metrics_set_lv(o, L_SECURITY, o->mtls ? "mutual_tls" : "none");
	metrics_set_lv(o, L_SRC_PRINCIPAL, o->src_principal);
	metrics_set_lv(o, L_DST_PRINCIPAL, o->dst_principal);
	if (c->dir == CONN_OUTBOUND) {
		metrics_set_lv(o, L_REPORTER, "source");
		metrics_fill_peer(t, o, &METRICS_SRC, r->local, p->namespace, p->name);
		metrics_fill_peer(t, o, &METRICS_DST, NULL, NULL, NULL);
		/* to a VIP the labels name the Service, not the endpoint picked */
		if (!r->via_vip && r->peer)
			metrics_fill_peer(t, o, &METRICS_DST, r->peer, NULL, NULL);
	} else {
		metrics_set_lv(o, L_REPORTER, "destination");
		metrics_fill_peer(t, o, &METRICS_DST, r->local, p->namespace, p->name);
		metrics_fill_peer(t, o, &METRICS_SRC, NULL, NULL, NULL);
		if (r->peer)
			metrics_fill_peer(t, o, &METRICS_SRC, r->peer, NULL, NULL);
	}
	metrics_fill_service(o, r->svc);
}

/* ---- connection hooks ---- */

static struct conn_obs *metrics_obs_get(struct conn *c)
{
	struct tunnel *t = c->pod->t;

	if (!t->metrics && !t->alog)
		return NULL;
	if (!c->obs)
		c->obs = calloc(1, sizeof(*c->obs));
	return c->obs;
}

static void metrics_lset_unref(struct obs_lset *ls)
{
	if (!ls || --ls->refs)
		return;
	for (int i = 0; i < L_COUNT; i++)
		free(ls->lv[i]);
	free(ls->src_principal);
	free(ls->dst_principal);
	free(ls->pod_ns);
	free(ls->pod_name);
	accesslog_names_free(ls->alnames);
	free(ls);
}

static bool metrics_str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* Does ls carry the labels metrics_fill_labels() would give c (key as below)? */
static bool metrics_lset_match(const struct obs_lset *ls, const struct obs_lset *k)
{
	return ls && ls->generation == k->generation && ls->dir == k->dir &&
	       ls->mtls == k->mtls && ls->local == k->local && ls->peer == k->peer &&
	       ls->svc == k->svc && metrics_str_eq(ls->src_principal, k->src_principal) &&
	       metrics_str_eq(ls->dst_principal, k->dst_principal) && metrics_str_eq(ls->pod_ns, k->pod_ns) &&
	       metrics_str_eq(ls->pod_name, k->pod_name);
}

/* c's key, strings borrowed (k is compared, never kept). Pointers into the
 * model are compared only within one generation, so a freed object's
 * address reused by the next model cannot match. */
static void metrics_lset_key(const struct conn *c, const struct conn_obs *o, struct obs_lset *k)
{
	const struct route *r = &c->route;

	*k = (struct obs_lset){
		.generation = r->generation, .dir = c->dir, .mtls = o->mtls, .local = r->local,
		/* outbound to a VIP the labels name the Service, not the endpoint */
		.peer = c->dir == CONN_OUTBOUND && r->via_vip ? NULL : r->peer, .svc = r->svc,
		.src_principal = o->src_principal, .dst_principal = o->dst_principal,
	};
	if (!r->local) { /* the pod's own names stand in for the model's */
		k->pod_ns = c->pod->namespace;
		k->pod_name = c->pod->name;
	}
}

static size_t metrics_lset_slot(const struct obs_lset *k)
{
	uint64_t h = k->generation * 0x9e3779b97f4a7c15ull;

	h ^= (uintptr_t)k->local + 31 * (uintptr_t)k->peer + 961 * (uintptr_t)k->svc + k->dir;
	h *= 0xff51afd7ed558ccdull;
	return (size_t)(h >> 32) % OBS_MEMO;
}

static const char *metrics_known(const char *s)
{
	return s && strcmp(s, UNKNOWN) ? s : NULL;
}

/* The access log's fields fixed by the labels ls (none: all unknown). */
static void metrics_alog_names(const struct obs_lset *ls, const char *src_principal,
			       const char *dst_principal, struct accesslog_entry *e)
{
	static char *const none[L_COUNT];
	char *const *lv = ls ? ls->lv : none;

	*e = (struct accesslog_entry){
		.direction = (ls ? ls->dir : CONN_OUTBOUND) == CONN_OUTBOUND ? "outbound" : "inbound",
		.src_workload = metrics_known(lv[L_SRC_WORKLOAD]),
		.src_namespace = metrics_known(lv[L_SRC_NS]),
		.src_identity = src_principal,
		.dst_workload = metrics_known(lv[L_DST_WORKLOAD]),
		.dst_namespace = metrics_known(lv[L_DST_NS]),
		.dst_identity = dst_principal,
		.dst_service = metrics_known(lv[L_DST_SERVICE]),
	};
}

/* A new set for c (one reference), the key's strings copied; NULL on ENOMEM. */
static struct obs_lset *metrics_lset_new(struct tunnel *t, struct conn *c, const struct obs_lset *k)
{
	struct obs_lset *ls = calloc(1, sizeof(*ls));

	if (!ls)
		return NULL;
	*ls = *k;
	ls->refs = 1;
	ls->src_principal = k->src_principal ? strdup(k->src_principal) : NULL;
	ls->dst_principal = k->dst_principal ? strdup(k->dst_principal) : NULL;
	ls->pod_ns = k->pod_ns ? strdup(k->pod_ns) : NULL;
	ls->pod_name = k->pod_name ? strdup(k->pod_name) : NULL;
	metrics_fill_labels(t, c, ls);
	if (t->alog && t->metrics) { /* without metrics the set is this connection's alone */
		struct accesslog_entry e;

		metrics_alog_names(ls, ls->src_principal, ls->dst_principal, &e);
		ls->alnames = accesslog_names_new(&e);
	}
	return ls;
}

static void metrics_obs_free(struct conn_obs *o)
{
	if (!o)
		return;
	free(o->src_principal);
	free(o->dst_principal);
	free(o->policy_name);
	free(o);
}

void metrics_conn_identity(struct conn *c, const char *src_principal, const char *dst_principal)
{
	struct conn_obs *o = metrics_obs_get(c);

	if (!o)
		return;
	free(o->src_principal);
	free(o->dst_principal);
	o->src_principal = src_principal ? strdup(src_principal) : NULL;
	o->dst_principal = dst_principal ? strdup(dst_principal) : NULL;
	o->mtls = true;
}

void metrics_conn_policy(struct conn *c, bool allow, const char *policy)
{
	struct conn_obs *o = metrics_obs_get(c);

	if (!allow)
		metrics_policy_denial(c->pod->t, policy);
	if (!o)
		return;
	o->policy = allow ? 1 : 2;
	free(o->policy_name);
	o->policy_name = policy ? strdup(policy) : NULL;
}

void metrics_conn_open(struct conn *c)
{
	struct tunnel *t = c->pod->t;
	struct conn_obs *o = metrics_obs_get(c);
	struct metrics *m = t->metrics;
	struct obs_lset k, *ls;
	struct timespec ts;
	char *labels;
	size_t slot;

	if (!o || o->opened)
		return;
	o->opened = true;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* c->start_ms is monotonic, taken at accept: back-date the wall clock. */
	o->start_unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 -
			   (int64_t)(loop_now_ms() - c->start_ms);
	metrics_lset_key(c, o, &k);
	if (!m) {
		o->ls = metrics_lset_new(t, c, &k); /* the access log's alone */
		return;
	}
	slot = metrics_lset_slot(&k);
	pthread_mutex_lock(&m->mu);
	ls = m->memo[slot];
	if (metrics_lset_match(ls, &k)) {
		ls->refs++;
		o->ls = ls;
		o->series = ls->series;
		if (o->series)
			o->series->opened++;
		pthread_mutex_unlock(&m->mu);
		return;
	}
	pthread_mutex_unlock(&m->mu);
	/* made outside the lock: the values and the label string */
	ls = metrics_lset_new(t, c, &k);
	labels = ls ? metrics_obs_labels(ls, "-") : NULL;
	pthread_mutex_lock(&m->mu);
	if (ls) {
		ls->series = labels ? tcp_series_get(m, labels) : NULL;
		if (ls->series) { /* a set without its series is not worth keeping */
			metrics_lset_unref(m->memo[slot]);
			m->memo[slot] = ls;
			ls->refs++;
		}
	}
	o->ls = ls;
	o->series = ls ? ls->series : NULL;
	if (o->series)
		o->series->opened++;
	pthread_mutex_unlock(&m->mu);
	free(labels);
}

/* Count bytes the relay moved since the last call. */
static void metrics_settle(struct conn_obs *o, uint64_t ab, uint64_t ba)
{
	if (o->series) {
		if (ab > o->acct_ab)
			o->series->received += ab - o->acct_ab;
		if (ba > o->acct_ba)
			o->series->sent += ba - o->acct_ba;
	}
	if (ab > o->acct_ab)
		o->acct_ab = ab;
	if (ba > o->acct_ba)
		o->acct_ba = ba;
}

/* "reset by a" speaks relay.h's sides: a is the accepted socket (the
 * source), b the upstream one (the destination). */
static const char *metrics_close_reason(const struct relay_stats *st, const char *reason, char *buf,
				size_t len)
{
	const char *r = reason ? reason : st && st->reason ? st->reason : "closed";

	if (reason || !st)
		return r;
	if (!strcmp(r, "reset by a"))
		return "reset by source";
	if (!strcmp(r, "reset by b"))
		return "reset by destination";
	if (!strncmp(r, "error on ", 9) && (r[9] == 'a' || r[9] == 'b')) {
		snprintf(buf, len, "error on %s: %s", r[9] == 'a' ? "source" : "destination",
			 strerror(st->error ? st->error : EIO));
		return buf;
	}
	return r;
}

void metrics_conn_close(struct conn *c, const struct relay_stats *st, const char *reason)
{
	struct tunnel *t = c->pod->t;
	struct conn_obs *o = metrics_obs_get(c);
	struct accesslog_entry e;
	char s[64], d[64], rbuf[128];

	if (!o)
		return;
	if (!o->opened)
		metrics_conn_open(c);
	if (t->metrics) {
		struct tcp_series *cs = o->series;
		char *labels = st || !o->ls ? NULL : metrics_obs_labels(o->ls, "CONNECT");

		pthread_mutex_lock(&t->metrics->mu);
		if (st)
			metrics_settle(o, st->a_to_b, st->b_to_a);
		else
			cs = labels ? tcp_series_get(t->metrics, labels) : NULL;
		if (cs)
			cs->closed++;
		pthread_mutex_unlock(&t->metrics->mu);
		free(labels);
	} else if (st) {
		metrics_settle(o, st->a_to_b, st->b_to_a);
	}
	if (t->alog) {
		struct obs_lset *ls = o->ls;

		/* the set's rendered names, unless an identity came after open */
		if (ls && ls->alnames && metrics_str_eq(ls->src_principal, o->src_principal) &&
		    metrics_str_eq(ls->dst_principal, o->dst_principal) && ls->dir == (int)c->dir) {
			e = (struct accesslog_entry){ .names = ls->alnames };
		} else {
			metrics_alog_names(ls, o->src_principal, o->dst_principal, &e);
			e.direction = c->dir == CONN_OUTBOUND ? "outbound" : "inbound";
		}
		e.start_unix_ms = o->start_unix_ms;
		e.duration_ms = loop_now_ms() - c->start_ms;
		e.src_addr = sockaddr_str(&c->src, s, sizeof(s));
		e.dst_addr = sockaddr_str(&c->dst, d, sizeof(d));
		e.bytes_sent = o->acct_ab;
		e.bytes_received = o->acct_ba;
		e.policy_decision = o->policy == 1 ? "allow" : o->policy == 2 ? "deny" : "none";
		e.policy_name = o->policy_name;
		e.reason = metrics_close_reason(st, reason, rbuf, sizeof(rbuf));
		accesslog_write(t->alog, &e);
	}
	if (t->metrics)
		pthread_mutex_lock(&t->metrics->mu);
	metrics_lset_unref(o->ls); /* shared with the memo and other connections */
	if (t->metrics)
		pthread_mutex_unlock(&t->metrics->mu);
	metrics_obs_free(o);
	c->obs = NULL;
}

/* ---- exposition ---- */

static void metrics_header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_sample(FILE *f, const char *name, const char *labels, uint64_t v)
{
	if (labels && *labels)
		fprintf(f, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
	else
		fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void metrics_render_tcp(FILE *f, const struct metrics *m)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} tcp[] = {
		{ "istio_tcp_connections_opened_total", "Total TCP connections opened.",
		  offsetof(struct tcp_series, opened) },
		{ "istio_tcp_connections_closed_total", "Total TCP connections closed.",
		  offsetof(struct tcp_series, closed) },
		{ "istio_tcp_sent_bytes_total",
		  "Total bytes sent during response (destination to source) over TCP connections.",
		  offsetof(struct tcp_series, sent) },
		{ "istio_tcp_received_bytes_total",
		  "Total bytes received during request (source to destination) over TCP connections.",
		  offsetof(struct tcp_series, received) },
	};

	for (size_t i = 0; i < ARRAY_SIZE(tcp); i++) {
		metrics_header(f, tcp[i].name, "counter", tcp[i].help);
		for (const struct tcp_series *s = m->all; s; s = s->next)
			metrics_sample(f, tcp[i].name, s->labels,
			       *(const uint64_t *)((const char *)s + tcp[i].off));
	}
}

char *metrics_render(struct tunnel *t)
{
	struct metrics *m = t->metrics;
	uint64_t active[2] = { 0, 0 };
	char *s = NULL;
	size_t n = 0;
	FILE *f;
	bool ok;

	if (!m)
		return strdup("");
	mtls_scrape(t);
	/* Live connections: bring their byte counters up to date (they are
	 * the workers': isolated for this loop only). */
	workers_isolate(t);
	for (struct pod *p = t->pods; p; p = pod_shard_next(p)) {
		for (struct conn *c = p->conns; c; c = c->next) {
			active[c->dir == CONN_INBOUND]++;
			if (c->obs && (c->relay || c->hs)) {
				struct relay_stats st;

				conn_get_stats(c, &st);
				metrics_settle(c->obs, st.a_to_b, st.b_to_a);
			}
		}
	}
	workers_release(t);
	f = open_memstream(&s, &n);
	if (!f)
		return NULL;
	/* The rest reads the series under their own lock and what only this
	 * (the main) thread writes: the worker threads run meanwhile. */
	pthread_mutex_lock(&m->mu);
	metrics_render_tcp(f, m);
	metrics_header(f, "warren_build_info", "gauge", "warren-tunnel build information.");
	fprintf(f, "warren_build_info{version=\"%s\"} 1\n", WARREN_VERSION);
	metrics_header(f, "warren_enrolled_pods", "gauge", "Pods enrolled on this node's tunnel.");
	metrics_sample(f, "warren_enrolled_pods", NULL, t->n_pods);
	metrics_header(f, "warren_mesh_generation", "gauge",
	       "Generation of the mesh model in use (0: none loaded yet).");
	metrics_sample(f, "warren_mesh_generation", NULL, tunnel_generation(t));
	metrics_header(f, "warren_mesh_reload_errors_total", "counter",
	       "Mesh model loads that failed (the last good model stayed in use).");
	metrics_sample(f, "warren_mesh_reload_errors_total", NULL, t->mesh_reload_errors);
	metrics_header(f, "warren_mesh_pods_kept", "gauge",
	       "Pods enrolled here that the mesh file no longer lists, kept from an earlier model.");
	metrics_sample(f, "warren_mesh_pods_kept", NULL, t->mesh_pods_kept);
	metrics_header(f, "warren_connections_refused_unserving_total", "counter",
	       "Captured connections refused before a model, its policies or a CA had loaded.");
	metrics_sample(f, "warren_connections_refused_unserving_total", NULL, atomic_load(&t->gate_refused));
	kube_tunnel_metrics(t, f);
	metrics_header(f, "warren_connections_active", "gauge", "Connections being relayed now, by direction.");
	metrics_sample(f, "warren_connections_active", "direction=\"outbound\"", active[0]);
	metrics_sample(f, "warren_connections_active", "direction=\"inbound\"", active[1]);
	metrics_header(f, "warren_metrics_series_dropped_total", "counter",
	       "Connections whose Istio label set was not recorded (series limit reached).");
	metrics_sample(f, "warren_metrics_series_dropped_total", NULL, m->dropped);
	for (int i = 0; i < F_COUNT; i++) {
		const struct family *fam = &m->fam[i];

		metrics_header(f, fam->name, fam->type, fam->help);
		for (const struct gseries *g = fam->series; g; g = g->next) {
			if (*g->labels)
				fprintf(f, "%s{%s} %lld\n", fam->name, g->labels, (long long)g->value);
			else
				fprintf(f, "%s %lld\n", fam->name, (long long)g->value);
		}
	}
	pthread_mutex_unlock(&m->mu);
	ok = fclose(f) == 0;
	if (!ok) {
		free(s);
		return NULL;
	}
	return s;
}
