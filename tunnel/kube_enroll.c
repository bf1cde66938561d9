/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kubernetes mode: enrollment follows the labels of running pods.
 *
 * warren-cni asks the tunnel ("query") about every pod it sets up,
 * enrolled or not, and tells it where the pod lives (netns path, container
 * id, interface, IPs). We remember that per pod until its DEL. After each
 * model rebuild:
 *  - a remembered pod that the model now enrolls (its namespace or itself
 *    labelled istio.io/dataplane-mode=ambient) is enrolled without a
 *    restart: the same answer "query" gives the plugin, the in-pod rules
 *    programmed with the plugin's netlink code (inpod_apply), then the
 *    plugin's "add", so the pod is recorded and served exactly as after an
 *    ADD;
 *  - an enrolled pod that the model still has but no longer enrolls (label
 *    removed, or the pod labelled none) is released: its in-pod rules
 *    removed, then the plugin's "del", which closes its listeners and
 *    ends its relayed connections (as ztunnel drains a removed workload
 *    at once) and forgets its record.
 * A pod missing from the model is left alone: its DEL comes from the
 * runtime. What we remember is kept in stateDir/kube-seen.json (rewritten
 * whole on each change, atomically), so a label flipped while the tunnel
 * was down is followed once it is back. Pods that started before warren
 * was installed are not known (their ADD is past).
 */
#include "tunnel/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/handoff.h"
#include "conf/log.h"
#include "netlink/inpod.h"

#define SEEN_MAX 65536 /* far above the pods a node runs; bounds a misbehaving client */

struct kube_seen_pod {
	struct kube_seen_pod *next;
	char *uid, *ns, *name, *cid, *ifname, *netns;
	json_t *ips;
};

struct kube_seen {
	struct kube_seen_pod *pods;
	size_t n;
	bool releasing; /* our own "del": the pod stays remembered */
};

static void seen_free(struct kube_seen_pod *e)
{
	free(e->uid);
	free(e->ns);
	free(e->name);
	free(e->cid);
	free(e->ifname);
	free(e->netns);
	json_decref(e->ips);
	free(e);
}

static const char *field(json_t *req, const char *k)
{
	const char *s = json_string_value(json_object_get(req, k));

	return s && *s ? s : NULL;
}

/* Unlinks and frees the entries of uid or of cid/ifname. */
static void seen_drop(struct kube_seen *ks, const char *uid, const char *cid, const char *ifname)
{
	for (struct kube_seen_pod **pp = &ks->pods; *pp;) {
		struct kube_seen_pod *e = *pp;

		if ((uid && !strcmp(e->uid, uid)) ||
		    (cid && ifname && !strcmp(e->cid, cid) && !strcmp(e->ifname, ifname))) {
			*pp = e->next;
			seen_free(e);
			ks->n--;
		} else {
			pp = &e->next;
		}
	}
}

#define SEEN_FILE "kube-seen.json"

static json_t *seen_json(const struct kube_seen_pod *e)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "uid", e->uid, "namespace", e->ns, "name",
			 e->name, "containerId", e->cid, "ifname", e->ifname, "netns", e->netns, "ips",
			 e->ips);
}

/* The whole table, atomically (a few hundred pods at most per node). */
static void seen_save(struct tunnel *t)
{
	char path[4096], tmp[4200];
	json_t *a = json_array();

	for (const struct kube_seen_pod *e = t->seen->pods; a && e; e = e->next)
		json_array_append_new(a, seen_json(e));
	snprintf(path, sizeof(path), "%s/" SEEN_FILE, t->conf->state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!a || json_dump_file(a, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0) {
		log_warn("cannot write %s: %s; pods labelled while the tunnel is down are followed after their next ADD",
			 path, a ? strerror(errno) : "out of memory");
		unlink(tmp);
	}
	json_decref(a);
}

static bool seen_same(const struct kube_seen_pod *e, json_t *req)
{
	json_t *now = seen_json(e);
	bool same = true;
	const char *k;
	json_t *v;

	json_object_foreach(now, k, v) {
		json_t *r = json_object_get(req, k);

		if (!r ? strcmp(k, "ips") || json_array_size(v) : !json_equal(r, v)) {
			same = false;
			break;
		}
	}
	json_decref(now);
	return same;
}

static void remember(struct tunnel *t, json_t *req, bool save);

void kube_enroll_remember(struct tunnel *t, json_t *req)
{
	remember(t, req, true);
}

void kube_enroll_load(struct tunnel *t)
{
	char path[4096];
	json_t *a, *e;
	size_t i;

	snprintf(path, sizeof(path), "%s/" SEEN_FILE, t->conf->state_dir);
	a = json_load_file(path, 0, NULL);
	json_array_foreach(a, i, e)
		remember(t, e, false);
	if (json_array_size(a))
		log_info("kubernetes: %zu pods of this node remembered from %s", t->seen ? t->seen->n : 0,
			 path);
	json_decref(a);
}

static void remember(struct tunnel *t, json_t *req, bool save)
{
	const char *uid = field(req, "uid"), *ns = field(req, "namespace"), *name = field(req, "name");
	const char *cid = field(req, "containerId"), *ifname = field(req, "ifname");
	const char *netns = field(req, "netns");
	json_t *ips = json_object_get(req, "ips");
	struct kube_seen_pod *e;

	if (!t->kw || !uid || !ns || !name || !cid || !ifname || !netns || !state_uid_valid(uid))
		return;
	if (!t->seen && !(t->seen = calloc(1, sizeof(*t->seen))))
		return;
	for (e = t->seen->pods; e; e = e->next)
		if (!strcmp(e->uid, uid) && seen_same(e, req))
			return; /* a CHECK's query: nothing new */
	seen_drop(t->seen, uid, cid, ifname);
	if (t->seen->n >= SEEN_MAX)
		return;
	e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->uid = strdup(uid);
	e->ns = strdup(ns);
	e->name = strdup(name);
	e->cid = strdup(cid);
	e->ifname = strdup(ifname);
	e->netns = strdup(netns);
	e->ips = json_is_array(ips) ? json_deep_copy(ips) : json_array();
	if (!e->uid || !e->ns || !e->name || !e->cid || !e->ifname || !e->netns || !e->ips) {
		seen_free(e);
		return;
	}
	e->next = t->seen->pods;
	t->seen->pods = e;
	t->seen->n++;
	if (save)
		seen_save(t);
}

void kube_enroll_forget(struct tunnel *t, json_t *req)
{
	size_t n;

	if (!t->seen || t->seen->releasing)
		return;
	n = t->seen->n;
	seen_drop(t->seen, field(req, "uid"), field(req, "containerId"), field(req, "ifname"));
	if (t->seen->n != n)
		seen_save(t);
}

void kube_enroll_stop(struct tunnel *t)
{
	if (!t->seen)
		return;
	while (t->seen->pods) {
		struct kube_seen_pod *e = t->seen->pods;

		t->seen->pods = e->next;
		seen_free(e);
	}
	free(t->seen);
	t->seen = NULL;
}

static bool answered_ok(json_t *resp, const char **error)
{
	*error = json_string_value(json_object_get(resp, "error"));
	if (!*error)
		*error = resp ? "no error given" : "out of memory";
	return json_is_true(json_object_get(resp, "ok"));
}

static void release(struct tunnel *t, struct pod *p, const char *reason)
{
	char err[512];
	json_t *req, *resp;
	const char *why;
	int fd = -1;

	log_info("pod %s/%s is no longer selected for the mesh (%s): releasing it", p->namespace,
		 p->name, reason);
	if (inpod_remove(p->netns_fd, err, sizeof(err)) < 0)
		log_warn("pod %s/%s: removing the in-pod rules failed: %s", p->namespace, p->name, err);
	req = json_pack("{s:s,s:s,s:s}", "op", "del", "containerId", p->container_id, "ifname",
			p->ifname);
	t->seen->releasing = true;
	resp = req ? handoff_server_local(t, req, &fd) : NULL;
	t->seen->releasing = false;
	if (!answered_ok(resp, &why))
		log_error("pod %s/%s: release failed: %s", p->namespace, p->name, why);
	json_decref(req);
	json_decref(resp);
}

static void enroll(struct tunnel *t, struct kube_seen_pod *e)
{
	struct inpod_mode mode;
	json_t *req = NULL, *resp;
	const char *why;
	char err[512];
	int fd;

	req = json_pack("{s:s,s:s,s:s,s:s}", "op", "query", "namespace", e->ns, "name", e->name,
			"uid", e->uid);
	fd = -1;
	resp = req ? handoff_server_local(t, req, &fd) : NULL;
	json_decref(req);
	req = NULL;
	if (!answered_ok(resp, &why) || !json_is_true(json_object_get(resp, "enroll")) ||
	    handoff_mode_get(resp, &mode, err, sizeof(err)) < 0) {
		if (!json_is_true(json_object_get(resp, "ok")))
			log_warn("pod %s/%s: not enrolled after its label change: %s", e->ns, e->name, why);
		json_decref(resp);
		return;
	}
	json_decref(resp);
	fd = open(e->netns, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_warn("pod %s/%s: cannot open its netns %s (%s); forgetting it until its next ADD",
			 e->ns, e->name, e->netns, strerror(errno));
		seen_drop(t->seen, e->uid, NULL, NULL); /* frees e */
		seen_save(t);
		return;
	}
	if (inpod_apply(fd, &mode, err, sizeof(err)) < 0) {
		log_error("pod %s/%s: programming the in-pod rules failed: %s; not enrolled", e->ns,
			  e->name, err);
		close(fd);
		return;
	}
	req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "op", "add", "uid", e->uid, "namespace",
			e->ns, "name", e->name, "containerId", e->cid, "ifname", e->ifname, "netns",
			e->netns, "ips", e->ips);
	if (req && handoff_mode_put(req, &mode) < 0) {
		json_decref(req);
		req = NULL;
	}
	resp = req ? handoff_server_local(t, req, &fd) : NULL;
	if (answered_ok(resp, &why)) {
		log_info("pod %s/%s enrolled after its label change, without a restart", e->ns,
			 e->name);
	} else {
		log_error("pod %s/%s: enrolling after its label change failed: %s", e->ns, e->name, why);
		if (fd < 0)
			fd = open(e->netns, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && inpod_remove(fd, err, sizeof(err)) < 0)
			log_warn("pod %s/%s: removing the in-pod rules failed: %s", e->ns, e->name, err);
	}
	if (fd >= 0)
		close(fd);
	json_decref(req);
	json_decref(resp);
}

void kube_enroll_reconcile(struct tunnel *t)
{
	const struct mesh *m = t->mesh;
	struct kube_seen_pod *e, *next;
	struct pod *p, *pn;
	const char *why;

	if (!t->kw || !m || !t->adopted || t->draining)
		return;
	if (!t->seen && !(t->seen = calloc(1, sizeof(*t->seen))))
		return;
	for (p = t->pods; p; p = pn) {
		const struct mesh_pod *mp = mesh_find_pod(m, p->namespace, p->name);
		const char *reason = "";

		pn = p->next;
		if (!mp || (p->uid[0] && mp->uid[0] && strcmp(p->uid, mp->uid)))
			continue;
		if (!mesh_pod_enrolled(m, p->namespace, p->name, &reason))
			release(t, p, reason);
	}
	for (e = t->seen->pods; e; e = next) {
		const struct mesh_pod *mp = mesh_find_pod(m, e->ns, e->name);

		next = e->next;
		if (pod_find_uid(t, e->uid) || !mp || (mp->uid[0] && strcmp(mp->uid, e->uid)) ||
		    !mesh_pod_enrolled(m, e->ns, e->name, &why))
			continue;
		enroll(t, e);
	}
}
