/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Kubernetes source of the model (contract in tunnel/kube_watch.h).
 *
 * Each resource of the table below is listed (paged, limit/continue) and
 * then watched from the list's resourceVersion with bookmarks; the
 * resourceVersion of every event and bookmark is kept, so a watch that
 * ends (its timeout, a dropped connection, an API server restart) resumes
 * where it was without a list. Only 410 Gone, as the HTTP status or as an
 * ERROR event in the stream, makes a resource list again. Failures retry
 * after an exponential delay with jitter, per resource: one watch failing
 * does not hold up the others. The bearer token is re-read when its file
 * changes and after a 401 (projected tokens expire).
 *
 * All requests are libcurl easy handles on one multi handle driven from
 * the host's loop (its fds through CURLMOPT_SOCKETFUNCTION, its
 * timeouts through a loop timer); over HTTP/2 all watches share one TLS
 * connection.
 *
 * Objects are kept per resource by "namespace/name", as the model needs
 * them: what the model never reads is cut from the text before it is
 * parsed (kube_json_prune: of a pod, all but the fields the builder reads,
 * which is most of its JSON; of other objects metadata.managedFields), and
 * a pod is stored as kube_obj_compact() makes it. The whole model is rebuilt from them with the
 * builder file mode uses (mesh_build_shared: the model refers to the
 * stored objects, which are replaced, never changed), at most every
 * REBUILD_MS: the first change after a quiet spell is built at once
 * (with whatever else arrived in the same read), the changes that follow
 * wait for the end of the window (kube_rebuild_delay); an event that
 * changes nothing kept (a pod's status heartbeat) rebuilds nothing. No model is built
 * before every resource has listed once (a model with pods and no policies
 * would let through what policy denies). An object the builder rejects is
 * logged with its name and field and kept out: its previous version (if
 * any) stays, as a broken file leaves the last good model in file mode.
 * AuthorizationPolicies are accepted as they are; the policy engine fails
 * an invalid one closed for its scope.
 *
 * While the API server is unreachable nothing changes: the last model
 * stays in use and enforced, readiness stays as it was, and the admin API
 * and metrics say since when each resource is out of sync.
 */
#include "tunnel/kube_watch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <curl/curl.h>

#include "conf/kube.h"
#include "conf/kube_prune.h"
#include "conf/log.h"
#include "conf/objcheck.h"
#include "model/mesh.h"
#include "tunnel/loop.h"

#define KW_MAGIC          0x4b574154u
#define REBUILD_MS        50
#define BACKOFF_BASE_MS   250
#define BACKOFF_MAX_MS    30000
#define ABSENT_RETRY_MS   10000
#define LIST_LIMIT        500
#define BODY_MAX          (64u << 20) /* one list page; 500 objects are far below */
#define LINE_MAX_BYTES    (16u << 20) /* one watch event */
#define STATUS_MAX        (64u << 10) /* the body of an error answer */
#define ORIGIN            "the API server"

/* One watched resource. optional: a CRD whose absence is reported, not
 * fatal; versions are tried in order (v1, then v1beta1). */
struct kres_def {
	const char *name; /* plural, as in the URL */
	const char *kind;
	const char *prefix[2]; /* "/api/v1", "/apis/<group>/<version>" */
	bool optional;
};

static const struct kres_def kres_defs[] = {
	{ "namespaces", "Namespace", { "/api/v1" }, false },
	{ "pods", "Pod", { "/api/v1" }, false },
	{ "services", "Service", { "/api/v1" }, false },
	{ "endpointslices", "EndpointSlice", { "/apis/discovery.k8s.io/v1" }, false },
	{ "authorizationpolicies", "AuthorizationPolicy",
	  { "/apis/security.istio.io/v1", "/apis/security.istio.io/v1beta1" }, true },
	{ "peerauthentications", "PeerAuthentication",
	  { "/apis/security.istio.io/v1", "/apis/security.istio.io/v1beta1" }, true },
	/* waypoints (Gateway) and their routes (HTTPRoute); the Gateway API's
	 * CRDs are not installed everywhere */
	{ "gateways", "Gateway",
	  { "/apis/gateway.networking.k8s.io/v1", "/apis/gateway.networking.k8s.io/v1beta1" }, true },
	{ "httproutes", "HTTPRoute",
	  { "/apis/gateway.networking.k8s.io/v1", "/apis/gateway.networking.k8s.io/v1beta1" }, true },
};

#define N_RES (sizeof(kres_defs) / sizeof(kres_defs[0]))

bool kube_watch_resource(const char *kind, const char **plural, const char *const **prefix,
			 bool *optional)
{
	for (size_t i = 0; i < N_RES; i++)
		if (!strcmp(kres_defs[i].kind, kind)) {
			*plural = kres_defs[i].name;
			*prefix = kres_defs[i].prefix;
			*optional = kres_defs[i].optional;
			return true;
		}
	return false;
}

enum kstate { KS_LIST, KS_WATCH, KS_ABSENT };

static const char *const kw_kstate_names[] = { "listing", "watching", "absent" };

struct kube_watch;

struct kres {
	struct kube_watch *kw;
	const struct kres_def *def;
	unsigned ver;              /* index into def->prefix */
	enum kstate state;
	CURL *easy;                /* the request in flight, or NULL */
	struct curl_slist *hdrs;
	long code;                 /* HTTP status of the request in flight (0: none yet) */
	char *buf;                 /* list body, watch line remainder, or error body */
	size_t len, cap;
	bool overflow;
	char errbuf[CURL_ERROR_SIZE];
	char *rv;                  /* last resourceVersion seen */
	char *cont;                /* continue token of a paged list */
	json_t *objs;              /* the store: "ns/name" -> object */
	json_t *next;              /* a list in progress fills this */
	bool listed;               /* has a store (listed once, or absent) */
	bool relist;               /* an ERROR 410 arrived in the stream */
	bool streaming;            /* a watch answered 200 and is open */
	unsigned attempt;          /* failures in a row */
	struct loop_timer *retry;
	uint64_t last_sync_ms;     /* last list, event, bookmark or watch end */
	uint64_t lists, events, errors, rejected;
	uint64_t unchanged;        /* events that changed nothing the model reads */
	json_t *refused, *refused_next; /* key -> {"error", "object"}: the builder refused its latest */
	char last_error[384];
};

struct kube_watch {
	unsigned magic;
	struct kube_watch_host h;
	struct kube_creds creds;
	char *token;
	struct stat token_st;
	CURLM *multi;
	struct loop_timer *curl_timer, *rebuild;
	uint64_t rebuilds, build_errors;
	uint64_t last_rebuild_ms;  /* when the last rebuild started */
	bool curl_inited;
	struct kres res[N_RES];
};

static int kres_start(struct kres *r);
static struct curl_slist *kw_headers(struct kube_watch *kw, const char *content_type);
static void kw_tls_opts(struct kube_watch *kw, CURL *e);

static uint32_t kw_rnd32(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)loop_now_ms() * 2654435761u;
	return v;
}

static void kres_note(struct kres *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records (for the admin API) and logs an error of resource r. */
static void kres_note(struct kres *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->last_error, sizeof(r->last_error), fmt, ap);
	va_end(ap);
	log_warn("kubernetes %s: %s", r->def->name, r->last_error);
}

/* ---- token ---- */

/* Re-reads the token file when it changed (or force). A failed read keeps
 * the old token: the server says whether it still works. */
void kube_watch_token_refresh(struct kube_watch *kw, bool force)
{
	struct stat st;
	char err[256], *tok;

	if (!kw->creds.token_file)
		return;
	if (stat(kw->creds.token_file, &st) < 0) {
		log_warn("kubernetes: cannot stat the token file %s: %s", kw->creds.token_file,
			 strerror(errno));
		return;
	}
	if (!force && kw->token && st.st_ino == kw->token_st.st_ino &&
	    st.st_size == kw->token_st.st_size &&
	    st.st_mtim.tv_sec == kw->token_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == kw->token_st.st_mtim.tv_nsec)
		return;
	if (kube_token_read(kw->creds.token_file, &tok, err, sizeof(err))) {
		log_warn("kubernetes: %s", err);
		return;
	}
	if (kw->token)
		log_info("kubernetes: re-read the token from %s", kw->creds.token_file);
	free(kw->token);
	kw->token = tok;
	kw->token_st = st;
}

/* ---- rebuilding the model ---- */

static bool kw_all_listed(const struct kube_watch *kw, const char **reason)
{
	static char why[128];

	for (size_t i = 0; i < N_RES; i++) {
		if (!kw->res[i].listed) {
			snprintf(why, sizeof(why), "waiting for the first list of %s from the API server",
				 kw->res[i].def->name);
			if (reason)
				*reason = why;
			return false;
		}
	}
	return true;
}

static void kw_rebuild_cb(struct loop *l, void *ctx)
{
	struct kube_watch *kw = ctx;
	json_t *all;
	int ret;

	CHECK_OBJ(kw, KW_MAGIC);
	kw->rebuild = NULL;
	if (!kw_all_listed(kw, NULL))
		return; /* the last first list re-arms us */
	kw->last_rebuild_ms = loop_now_ms();
	all = json_array();
	for (size_t i = 0; i < N_RES; i++) {
		const char *k;
		json_t *o;

		json_object_foreach(kw->res[i].objs, k, o)
			if (all)
				json_array_append(all, o);
	}
	ret = all ? kw->h.rebuild(kw->h.ctx, all) : -ENOMEM; /* the host logs */
	json_decref(all);
	kw->rebuilds++;
	if (ret < 0)
		kw->build_errors++;
}

static void kw_changed(struct kube_watch *kw)
{
	if (!kw->rebuild)
		kw->rebuild = loop_timer_add(kw->h.loop,
					     kube_rebuild_delay(loop_now_ms(), kw->last_rebuild_ms,
								REBUILD_MS),
					     kw_rebuild_cb, kw);
	if (!kw->rebuild)
		log_error("kubernetes: out of memory arming the model rebuild");
}

/* ---- objects ---- */

/* Checks obj with the model builder and stores what the model needs of it
 * (kube_obj_compact) in store. true when that changed the store (more than
 * a resourceVersion). */
static bool kres_put(struct kres *r, json_t *store, json_t *refused, json_t *obj,
		     const char *api_version)
{
	char key[512], err[512] = "";
	json_t *keep, *old;
	bool changed;
	int ret;

	kube_obj_trim(obj, api_version, r->def->kind);
	if (kube_obj_key(obj, key, sizeof(key))) {
		r->rejected++;
		kres_note(r, "a %s without metadata.name (or one too long) was ignored", r->def->kind);
		return false;
	}
	keep = kube_obj_compact(obj);
	ret = keep ? mesh_check_object(keep, ORIGIN, err, sizeof(err)) : -ENOMEM;
	if (ret < 0) {
		json_decref(keep);
		r->rejected++;
		kres_note(r, "%s %s rejected: %s; %s", r->def->kind, key, err[0] ? err : strerror(-ret),
			  json_object_get(store, key) ? "its previous version stays in the model"
						      : "it stays out of the model");
		/* the host may fail closed on it (waypoint/source.c) */
		if (refused)
			json_object_set_new(refused, key,
					    json_pack("{s:s,s:O}", "error", err[0] ? err : strerror(-ret),
						      "object", obj));
		return refused != NULL;
	}
	if (refused && json_object_get(refused, key)) {
		json_object_del(refused, key);
		json_object_set(store, key, keep);
		json_decref(keep);
		return true;
	}
	old = json_object_get(store, key);
	changed = !old || !kube_obj_same(old, keep);
	json_object_set_new(store, key, keep);
	return changed;
}

static void kres_set_rv(struct kres *r, const char *rv)
{
	char *s;

	if (!rv || !*rv || (r->rv && !strcmp(r->rv, rv)))
		return;
	s = strdup(rv);
	if (s) {
		free(r->rv);
		r->rv = s;
	}
}

static bool kres_is_pods(const struct kres *r)
{
	return !strcmp(r->def->kind, "Pod");
}

/* One line of a watch stream (changed in place). 0, or -1 to end this watch. */
static int kres_event(struct kres *r, char *line, size_t len)
{
	struct kube_event ev;
	char err[256], key[512];
	size_t bad;
	int ret = 0;

	if (kube_json_prune(line, len, KUBE_PRUNE_EVENT, kres_is_pods(r), &len, &bad)) {
		r->errors++;
		kres_note(r, "watch event is not JSON (byte %zu of %zu); restarting the watch", bad,
			  len);
		return -1;
	}
	if (kube_event_parse(line, len, &ev, err, sizeof(err))) {
		r->errors++;
		kres_note(r, "%s; restarting the watch", err);
		return -1;
	}
	r->events++;
	r->last_sync_ms = loop_now_ms();
	switch (ev.type) {
	case KEV_ERROR:
		if (ev.code == 410) {
			log_info("kubernetes %s: watch expired (410 Gone in the stream); listing again",
				 r->def->name);
			r->relist = true;
		} else {
			r->errors++;
			kres_note(r, "watch ERROR %d: %.200s", ev.code,
				  json_string_value(json_object_get(ev.object, "message")) ?: "");
		}
		ret = -1;
		break;
	case KEV_BOOKMARK:
		kres_set_rv(r, ev.rv);
		break;
	case KEV_ADDED:
	case KEV_MODIFIED:
		if (kres_put(r, r->objs, r->refused, ev.object, NULL))
			kw_changed(r->kw);
		else
			r->unchanged++;
		kres_set_rv(r, ev.rv);
		break;
	case KEV_DELETED:
		if (!kube_obj_key(ev.object, key, sizeof(key))) {
			json_object_del(r->objs, key);
			json_object_del(r->refused, key);
		}
		kres_set_rv(r, ev.rv);
		kw_changed(r->kw);
		break;
	}
	json_decref(ev.object);
	return ret;
}

/* ---- transfers ---- */

static int kw_buf_add(struct kres *r, const char *p, size_t n, size_t max)
{
	if (r->len + n > max) {
		r->overflow = true;
		return -1;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 16384;
		char *b;

		while (cap < r->len + n + 1)
			cap *= 2;
		b = realloc(r->buf, cap);
		if (!b)
			return -1;
		r->buf = b;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	r->buf[r->len] = '\0';
	return 0;
}

/* The status is known with the headers: a watch that answered 200 is open
 * (and may stay silent until the next change). */
static void kres_got_code(struct kres *r)
{
	if (r->code)
		return;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->code);
	if (r->code == 200 && r->state == KS_WATCH) {
		r->streaming = true;
		r->attempt = 0;
		r->last_sync_ms = loop_now_ms();
	}
}

static size_t kres_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct kres *r = ud;

	if (size * nmemb == 2 && p[0] == '\r') /* the end of the headers */
		kres_got_code(r);
	return size * nmemb;
}

static size_t kres_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct kres *r = ud;
	size_t n = size * nmemb, off = 0;

	kres_got_code(r);
	if (r->code != 200)
		return kw_buf_add(r, p, n, STATUS_MAX) ? 0 : n;
	if (r->state == KS_LIST)
		return kw_buf_add(r, p, n, BODY_MAX) ? 0 : n;
	if (kw_buf_add(r, p, n, LINE_MAX_BYTES))
		return 0;
	for (;;) {
		char *nl = memchr(r->buf + off, '\n', r->len - off);

		if (!nl)
			break;
		if (nl > r->buf + off && kres_event(r, r->buf + off, (size_t)(nl - r->buf - off)))
			return 0; /* ends the transfer: CURLE_WRITE_ERROR */
		off = (size_t)(nl - r->buf) + 1;
	}
	memmove(r->buf, r->buf + off, r->len - off);
	r->len -= off;
	return n;
}

static void kres_retry_cb(struct loop *l, void *ctx)
{
	struct kres *r = ctx;

	r->retry = NULL;
	kres_start(r);
}

static void kres_retry_in(struct kres *r, uint64_t ms)
{
	if (r->retry)
		loop_timer_cancel(r->kw->h.loop, r->retry);
	r->retry = loop_timer_add(r->kw->h.loop, ms, kres_retry_cb, r);
	if (!r->retry)
		log_error("kubernetes %s: out of memory arming a retry", r->def->name);
}

static void kres_backoff(struct kres *r)
{
	uint64_t ms = kube_backoff_ms(r->attempt, BACKOFF_BASE_MS, BACKOFF_MAX_MS, kw_rnd32());

	r->attempt++;
	log_debug("kubernetes %s: retrying in %llu ms", r->def->name, (unsigned long long)ms);
	kres_retry_in(r, ms);
}

static void kres_begin_list(struct kres *r)
{
	r->state = KS_LIST;
	free(r->cont);
	r->cont = NULL;
	json_decref(r->next);
	r->next = NULL;
	json_decref(r->refused_next);
	r->refused_next = NULL;
}

static void kres_list_done(struct kres *r)
{
	json_error_t je;
	json_t *body, *items, *it, *md;
	const char *apiv, *cont;
	size_t i, bad;

	if (r->buf && kube_json_prune(r->buf, r->len, KUBE_PRUNE_LIST, kres_is_pods(r), &r->len, &bad)) {
		r->errors++;
		kres_note(r, "the list answer is not JSON (byte %zu of %zu)", bad, r->len);
		kres_begin_list(r);
		kres_backoff(r);
		return;
	}
	body = json_loadb(r->buf ? r->buf : "", r->len, 0, &je);
	items = json_object_get(body, "items");
	md = json_object_get(body, "metadata");
	if (!json_is_array(items) && !json_is_null(items)) {
		r->errors++;
		kres_note(r, "the list answer is not a list (%s)", body ? "no items" : je.text);
		json_decref(body);
		kres_begin_list(r);
		kres_backoff(r);
		return;
	}
	if (!r->next)
		r->next = json_object();
	if (!r->refused_next)
		r->refused_next = json_object();
	apiv = json_string_value(json_object_get(body, "apiVersion"));
	json_array_foreach(items, i, it)
		if (r->next)
			kres_put(r, r->next, r->refused_next, it, apiv);
	cont = json_string_value(json_object_get(md, "continue"));
	if (cont && *cont) {
		free(r->cont);
		r->cont = strdup(cont);
		json_decref(body);
		kres_start(r); /* the next page */
		return;
	}
	if (!r->next) {
		json_decref(body);
		r->errors++;
		kres_note(r, "out of memory storing the list");
		kres_begin_list(r);
		kres_backoff(r);
		return;
	}
	json_decref(r->objs);
	r->objs = r->next;
	r->next = NULL;
	if (r->refused_next) {
		json_decref(r->refused);
		r->refused = r->refused_next;
		r->refused_next = NULL;
	}
	kres_set_rv(r, json_string_value(json_object_get(md, "resourceVersion")));
	json_decref(body);
	if (r->lists++)
		log_info("kubernetes %s: listed again: %zu objects at resourceVersion %s",
			 r->def->name, json_object_size(r->objs), r->rv ? r->rv : "?");
	else
		log_info("kubernetes %s: listed %zu objects at resourceVersion %s (%s)",
			 r->def->name, json_object_size(r->objs), r->rv ? r->rv : "?",
			 r->def->prefix[r->ver]);
	r->listed = true;
	r->attempt = 0;
	r->last_error[0] = '\0';
	r->last_sync_ms = loop_now_ms();
	r->state = KS_WATCH;
	kw_changed(r->kw);
	kres_start(r);
}

/* An optional resource answered 404 in every version. */
static void kres_absent(struct kres *r)
{
	bool had = r->objs && json_object_size(r->objs), was_listed = r->listed;

	r->ver = 0;
	r->state = KS_ABSENT;
	snprintf(r->last_error, sizeof(r->last_error),
		 "not served by the API server (404; is the %s CRD installed?); checking again every %d s",
		 r->def->kind, ABSENT_RETRY_MS / 1000);
	if (!r->listed || had)
		log_warn("kubernetes %s: %s", r->def->name, r->last_error);
	json_decref(r->objs);
	r->objs = json_object();
	json_object_clear(r->refused);
	free(r->rv);
	r->rv = NULL;
	r->listed = true;
	r->last_sync_ms = loop_now_ms();
	/* still absent, nothing lost: no new model (every 10 s, a whole rebuild) */
	if (!was_listed || had)
		kw_changed(r->kw);
	kres_retry_in(r, ABSENT_RETRY_MS);
}

static const char *kw_status_message(struct kres *r, char *buf, size_t len)
{
	json_t *st = r->len ? json_loadb(r->buf, r->len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(st, "message"));

	snprintf(buf, len, "%s", m ? m : "");
	json_decref(st);
	return buf;
}

static void kres_done(struct kres *r, CURLcode res)
{
	struct kube_watch *kw = r->kw;
	bool was_watch = r->state == KS_WATCH, streaming = r->streaming;
	char msg[256];
	long code = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(kw->multi, r->easy);
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	curl_slist_free_all(r->hdrs);
	r->hdrs = NULL;
	r->streaming = false;
	if (was_watch)
		r->last_sync_ms = loop_now_ms();

	if (r->relist) {
		r->relist = false;
		r->len = 0;
		kres_begin_list(r);
		kres_start(r);
		return;
	}
	if (code == 200 && res == CURLE_OK) {
		if (r->state == KS_LIST) {
			kres_list_done(r);
		} else {
			r->len = 0;
			kres_start(r); /* the watch timed out as asked: resume from r->rv */
		}
		r->len = 0;
		return;
	}
	if (code == 200 || !code) {
		/* a transport failure, or one while streaming (CURLE_WRITE_ERROR:
		 * kres_event ended it and counted it) */
		if (res != CURLE_WRITE_ERROR || r->overflow)
			r->errors++;
		if (r->overflow)
			kres_note(r, "%s larger than %u bytes; starting over",
				  r->state == KS_LIST ? "a list page" : "a watch event",
				  r->state == KS_LIST ? BODY_MAX : LINE_MAX_BYTES);
		else if (streaming && res != CURLE_WRITE_ERROR)
			kres_note(r, "watch ended: %s; resuming from resourceVersion %s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(res),
				  r->rv ? r->rv : "?");
		else if (res != CURLE_WRITE_ERROR)
			kres_note(r, "%s failed: %s", r->state == KS_LIST ? "list" : "watch",
				  r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
		r->overflow = false;
		r->len = 0;
		if (r->state == KS_LIST)
			kres_begin_list(r); /* a half list is dropped */
		kres_backoff(r);
		return;
	}
	kw_status_message(r, msg, sizeof(msg));
	r->len = 0;
	if (code == 410) {
		log_info("kubernetes %s: %s expired (410 Gone); listing again", r->def->name,
			 r->state == KS_LIST ? "the list's continue token" : "the watch's resourceVersion");
		kres_begin_list(r);
		kres_start(r);
		return;
	}
	if (code == 404 && r->def->optional) {
		if (r->ver + 1 < 2 && r->def->prefix[r->ver + 1]) {
			r->ver++;
			log_info("kubernetes %s: not served at %s; trying %s", r->def->name,
				 r->def->prefix[r->ver - 1], r->def->prefix[r->ver]);
			kres_begin_list(r);
			kres_start(r);
			return;
		}
		kres_absent(r);
		return;
	}
	r->errors++;
	if (code == 401) {
		kres_note(r, "401 Unauthorized (%s); re-reading the token", msg);
		kube_watch_token_refresh(kw, true);
	} else if (code == 403) {
		kres_note(r, "403 Forbidden: %s needs get, list and watch on %s (%s)",
			  r->kw->h.account ? r->kw->h.account : "this account",
			  r->def->name, msg);
	} else {
		kres_note(r, "HTTP %ld: %s", code, msg);
	}
	if (r->state == KS_LIST || code == 404)
		kres_begin_list(r);
	kres_backoff(r);
}

/* Accept, Authorization (when there is a token) and Content-Type (when
 * given). NULL on allocation failure. */
static struct curl_slist *kw_headers(struct kube_watch *kw, const char *content_type)
{
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json"), *n;
	char *line = NULL;

	if (h && content_type) {
		if (asprintf(&line, "Content-Type: %s", content_type) < 0)
			line = NULL;
		n = line ? curl_slist_append(h, line) : NULL;
		free(line);
		if (!n) {
			curl_slist_free_all(h);
			return NULL;
		}
	}
	if (h && kw->token) {
		if (asprintf(&line, "Authorization: Bearer %s", kw->token) < 0)
			line = NULL;
		n = line ? curl_slist_append(h, line) : NULL;
		if (line) {
			explicit_bzero(line, strlen(line));
			free(line);
		}
		if (!n) {
			curl_slist_free_all(h);
			return NULL;
		}
	}
	return h;
}

/* What every request shares: TLS to the API server, HTTP/2 on the one
 * shared connection, timeouts. */
static void kw_tls_opts(struct kube_watch *kw, CURL *e)
{
	const struct kube_creds *c = &kw->creds;

	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* wait for the shared h2 connection */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->ca_pem) {
		struct curl_blob b = { c->ca_pem, strlen(c->ca_pem), CURL_BLOB_COPY };

		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->cert_file)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	if (c->cert_pem) {
		struct curl_blob b = { c->cert_pem, strlen(c->cert_pem), CURL_BLOB_COPY };

		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (c->key_pem) {
		struct curl_blob b = { c->key_pem, strlen(c->key_pem), CURL_BLOB_COPY };

		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
	}
}

CURL *kube_watch_request(struct kube_watch *kw, const char *path, const char *content_type,
			 struct curl_slist **hdrs)
{
	char *url = NULL;
	CURL *e;

	kube_watch_token_refresh(kw, false);
	if (asprintf(&url, "%s%s", kw->creds.server, path) < 0)
		url = NULL;
	*hdrs = kw_headers(kw, content_type);
	e = curl_easy_init();
	if (!url || !*hdrs || !e) {
		curl_easy_cleanup(e);
		curl_slist_free_all(*hdrs);
		*hdrs = NULL;
		free(url);
		return NULL;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
	kw_tls_opts(kw, e);
	return e;
}

int kube_watch_submit(struct kube_watch *kw, CURL *e)
{
	return curl_multi_add_handle(kw->multi, e) == CURLM_OK ? 0 : -1;
}

void kube_watch_cancel(struct kube_watch *kw, CURL *e)
{
	curl_multi_remove_handle(kw->multi, e);
}

/* Starts the request of r's state. 0, or -1 (a retry is armed). */
static int kres_start(struct kres *r)
{
	struct kube_watch *kw = r->kw;
	const struct kube_creds *c = &kw->creds;
	char *url = NULL, *esc = NULL;
	struct curl_slist *h;
	CURL *e;
	int n;

	if (r->state == KS_ABSENT) {
		r->ver = 0;
		kres_begin_list(r);
	}
	kube_watch_token_refresh(kw, false);
	if (r->state == KS_LIST) {
		if (r->cont)
			esc = curl_easy_escape(NULL, r->cont, 0);
		n = asprintf(&url, "%s%s/%s?limit=%d%s%s", c->server, r->def->prefix[r->ver],
			     r->def->name, LIST_LIMIT, esc ? "&continue=" : "", esc ? esc : "");
		curl_free(esc);
	} else {
		/* as client-go: a random timeout, so watches do not all end together */
		n = asprintf(&url,
			     "%s%s/%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u",
			     c->server, r->def->prefix[r->ver], r->def->name, r->rv ? r->rv : "0",
			     300 + kw_rnd32() % 300);
	}
	if (n < 0)
		url = NULL;
	h = kw_headers(kw, NULL);
	e = curl_easy_init();
	if (!url || !h || !e) {
		curl_easy_cleanup(e);
		curl_slist_free_all(h);
		free(url);
		r->errors++;
		kres_note(r, "out of memory starting a request");
		kres_backoff(r);
		return -1;
	}
	r->easy = e;
	r->hdrs = h;
	r->code = 0;
	r->len = 0;
	r->overflow = false;
	r->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, kres_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, kres_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	/* a list must finish; a watch ends by its timeoutSeconds, this is a backstop */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->state == KS_LIST ? 120000L : 700000L);
	kw_tls_opts(kw, e);
	free(url);
	if (curl_multi_add_handle(kw->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		curl_slist_free_all(h);
		r->easy = NULL;
		r->hdrs = NULL;
		r->errors++;
		kres_note(r, "cannot add the request to the transfer set");
		kres_backoff(r);
		return -1;
	}
	return 0;
}

/* ---- libcurl on the loop ---- */

static void kw_check_done(struct kube_watch *kw)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(kw->multi, &left))) {
		char *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv >= (char *)kw->res && priv < (char *)(kw->res + N_RES))
			kres_done((struct kres *)priv, msg->data.result);
		else if (kw->h.done)
			kw->h.done(kw->h.ctx, priv, msg->data.result);
	}
}

static void kw_fd_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct kube_watch *kw = ctx;
	int flags = 0, running;

	CHECK_OBJ(kw, KW_MAGIC);
	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(kw->multi, fd, flags, &running);
	kw_check_done(kw);
}

static int kw_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct kube_watch *kw = userp;
	uint32_t ev = 0;

	if (what == CURL_POLL_REMOVE) {
		loop_del(kw->h.loop, s);
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	if (loop_set(kw->h.loop, s, ev, kw_fd_cb, kw) < 0) {
		log_error("kubernetes: cannot watch fd %d on the loop", s);
		return -1;
	}
	return 0;
}

static void kw_timer_cb(struct loop *l, void *ctx)
{
	struct kube_watch *kw = ctx;
	int running;

	CHECK_OBJ(kw, KW_MAGIC);
	kw->curl_timer = NULL;
	curl_multi_socket_action(kw->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	kw_check_done(kw);
}

static int kw_timerfn(CURLM *multi, long timeout_ms, void *userp)
{
	struct kube_watch *kw = userp;

	if (kw->curl_timer) {
		loop_timer_cancel(kw->h.loop, kw->curl_timer);
		kw->curl_timer = NULL;
	}
	if (timeout_ms < 0)
		return 0;
	kw->curl_timer = loop_timer_add(kw->h.loop, (uint64_t)timeout_ms, kw_timer_cb, kw);
	return kw->curl_timer ? 0 : -1;
}

/* ---- start, stop, state ---- */

int kube_watch_new(const struct kube_watch_host *h, struct kube_watch **out)
{
	struct kube_watch *kw;
	char err[512] = "";
	int ret;

	*out = kw = calloc(1, sizeof(*kw));
	if (!kw)
		return -ENOMEM;
	kw->magic = KW_MAGIC;
	kw->h = *h;
	if (h->kubeconfig)
		ret = kube_config_load(h->kubeconfig, &kw->creds, err, sizeof(err));
	else
		ret = kube_config_incluster(NULL, &kw->creds, err, sizeof(err));
	if (ret) {
		log_error("kubernetes: %s", err);
		return ret;
	}
	if (kw->creds.token)
		kw->token = strdup(kw->creds.token);
	kube_watch_token_refresh(kw, true);
	if (kw->creds.insecure)
		log_warn("kubernetes: insecure-skip-tls-verify is set in %s: the API server's certificate is NOT checked",
			 kw->creds.origin);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("kubernetes: libcurl does not initialise");
		return -ENOMEM;
	}
	kw->curl_inited = true;
	kw->multi = curl_multi_init();
	if (!kw->multi)
		return -ENOMEM;
	curl_multi_setopt(kw->multi, CURLMOPT_SOCKETFUNCTION, kw_socket_cb);
	curl_multi_setopt(kw->multi, CURLMOPT_SOCKETDATA, kw);
	curl_multi_setopt(kw->multi, CURLMOPT_TIMERFUNCTION, kw_timerfn);
	curl_multi_setopt(kw->multi, CURLMOPT_TIMERDATA, kw);
	curl_multi_setopt(kw->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	log_info("kubernetes: watching %s (%s)", kw->creds.server, kw->creds.origin);
	for (size_t i = 0; i < N_RES; i++) {
		struct kres *r = &kw->res[i];

		r->kw = kw;
		r->def = &kres_defs[i];
		r->objs = json_object();
		r->refused = json_object();
		if (!r->objs || !r->refused)
			return -ENOMEM;
		kres_begin_list(r);
		kres_start(r);
	}
	return 0;
}

void kube_watch_free(struct kube_watch *kw)
{
	if (!kw)
		return;
	for (size_t i = 0; i < N_RES; i++) {
		struct kres *r = &kw->res[i];

		if (r->easy) {
			curl_multi_remove_handle(kw->multi, r->easy);
			curl_easy_cleanup(r->easy);
		}
		curl_slist_free_all(r->hdrs);
		if (r->retry)
			loop_timer_cancel(kw->h.loop, r->retry);
		free(r->buf);
		free(r->rv);
		free(r->cont);
		json_decref(r->objs);
		json_decref(r->next);
		json_decref(r->refused);
		json_decref(r->refused_next);
	}
	if (kw->multi)
		curl_multi_cleanup(kw->multi);
	if (kw->curl_timer)
		loop_timer_cancel(kw->h.loop, kw->curl_timer);
	if (kw->rebuild)
		loop_timer_cancel(kw->h.loop, kw->rebuild);
	if (kw->curl_inited)
		curl_global_cleanup();
	if (kw->token) {
		explicit_bzero(kw->token, strlen(kw->token));
		free(kw->token);
	}
	kube_creds_free(&kw->creds);
	free(kw);
}

void *kube_watch_host_ctx(const struct kube_watch *kw)
{
	return kw->h.ctx;
}

bool kube_watch_listed(const struct kube_watch *kw, const char **reason)
{
	return kw_all_listed(kw, reason);
}

void kube_watch_foreach_refused(const struct kube_watch *kw, kube_refused_fn fn, void *ctx)
{
	for (size_t i = 0; i < N_RES; i++) {
		const char *k;
		json_t *v;

		json_object_foreach(kw->res[i].refused, k, v)
			fn(ctx, kw->res[i].def->kind, k, json_object_get(v, "object"),
			   json_string_value(json_object_get(v, "error")));
	}
}

/* Seconds since r was last known current: 0 while its watch is open. */
static double kres_age(const struct kres *r, uint64_t now)
{
	if (r->streaming)
		return 0;
	if (!r->last_sync_ms)
		return -1;
	return (double)(now - r->last_sync_ms) / 1000.0;
}

json_t *kube_watch_state(const struct kube_watch *kw)
{
	uint64_t now = loop_now_ms();
	json_t *res, *o;

	res = json_object();
	for (size_t i = 0; res && i < N_RES; i++) {
		const struct kres *r = &kw->res[i];
		double age = kres_age(r, now);

		o = json_pack("{s:s,s:s,s:b,s:b,s:o,s:I,s:I,s:I,s:I,s:I,s:o,s:o}",
			      "state", kw_kstate_names[r->state], "path", r->def->prefix[r->ver],
			      "listed", r->listed, "watching", r->streaming,
			      "resourceVersion", r->rv ? json_string(r->rv) : json_null(),
			      "objects", (json_int_t)json_object_size(r->objs),
			      "lists", (json_int_t)r->lists,
			      "relists", (json_int_t)(r->lists ? r->lists - 1 : 0),
			      "events", (json_int_t)r->events, "errors", (json_int_t)r->errors,
			      "lastSyncAgeSeconds", age < 0 ? json_null() : json_real(age),
			      "lastError", r->last_error[0] ? json_string(r->last_error) : json_null());
		if (o) {
			json_object_set_new(o, "rejected", json_integer((json_int_t)r->rejected));
			json_object_set_new(o, "unchanged", json_integer((json_int_t)r->unchanged));
			json_object_set_new(o, "refusedNow", json_integer((json_int_t)json_object_size(r->refused)));
		}
		json_object_set_new(res, r->def->name, o ? o : json_null());
	}
	return json_pack("{s:s,s:s,s:I,s:I,s:o}", "server", kw->creds.server,
			 "credentials", kw->creds.origin, "rebuilds", (json_int_t)kw->rebuilds,
			 "buildErrors", (json_int_t)kw->build_errors,
			 "resources", res ? res : json_null());
}

void kube_watch_write_metrics(const struct kube_watch *kw, FILE *f)
{
	uint64_t now = loop_now_ms();
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "warren_kube_lists_total", "counter", "Complete lists of a resource from the API server." },
		{ "warren_kube_relists_total", "counter", "Lists after the first (410 Gone or a CRD that appeared)." },
		{ "warren_kube_events_total", "counter", "Watch events received (bookmarks and errors included)." },
		{ "warren_kube_errors_total", "counter", "Failed requests and watch errors (each retried)." },
		{ "warren_kube_rejected_objects_total", "counter", "Objects the model builder rejected (kept out)." },
		{ "warren_kube_last_sync_age_seconds", "gauge", "Seconds since the resource was last known current (0 while its watch is open, -1 never)." },
		{ "warren_kube_watching", "gauge", "1 while the resource's watch is open." },
	};

	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam[k].name, fam[k].help, fam[k].name,
			fam[k].type);
		for (size_t i = 0; i < N_RES; i++) {
			const struct kres *r = &kw->res[i];
			double v;

			switch (k) {
			case 0: v = (double)r->lists; break;
			case 1: v = (double)(r->lists ? r->lists - 1 : 0); break;
			case 2: v = (double)r->events; break;
			case 3: v = (double)r->errors; break;
			case 4: v = (double)r->rejected; break;
			case 5: v = kres_age(r, now); break;
			default: v = r->streaming; break;
			}
			fprintf(f, "%s{resource=\"%s\"} %g\n", fam[k].name, r->def->name, v);
		}
	}
}
