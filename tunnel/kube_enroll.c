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
 * was down is followed once it is back. A pod of this node that the model
 * enrolls and that no ADD told us about (it predates warren, or ran
 * before a lost state dir) is looked for with the /proc scan istio-cni
 * uses (netlink/pod_netns.h) and remembered with the netns it finds, under
 * the container id "proc-scan:<uid>"; its runtime DEL cannot name that id,
 * so such a pod is released when the model no longer has it.
 */
#include "tunnel/kube_enroll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/handoff.h"
#include "conf/log.h"
#include "netlink/inpod.h"
#include "netlink/netns.h"
#include "netlink/pod_netns.h"
#include "tunnel/handoff_server.h"
#include "tunnel/pods.h"
#include "tunnel/state_record.h"
#include "tunnel/tunnel.h"

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

static void kube_enroll_seen_free(struct kube_seen_pod *e)
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

static const char *kube_enroll_field(json_t *req, const char *k)
{
	const char *s = json_string_value(json_object_get(req, k));

	return s && *s ? s : NULL;
}

/* Unlinks and frees the entries of uid or of cid/ifname. */
static void kube_enroll_seen_drop(struct kube_seen *ks, const char *uid, const char *cid, const char *ifname)
{
	for (struct kube_seen_pod **pp = &ks->pods; *pp;) {
		struct kube_seen_pod *e = *pp;

		if ((uid && !strcmp(e->uid, uid)) ||
		    (cid && ifname && !strcmp(e->cid, cid) && !strcmp(e->ifname, ifname))) {
			*pp = e->next;
			kube_enroll_seen_free(e);
			ks->n--;
		} else {
			pp = &e->next;
		}
	}
}

#define SEEN_FILE "kube-seen.json"

static json_t *kube_enroll_seen_json(const struct kube_seen_pod *e)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "uid", e->uid, "namespace", e->ns, "name",
			 e->name, "containerId", e->cid, "ifname", e->ifname, "netns", e->netns, "ips",
			 e->ips);
}

/* The whole table, atomically (a few hundred pods at most per node). */
static void kube_enroll_seen_save(struct tunnel *t)
{
	char path[4096], tmp[4200];
	json_t *a = json_array();

	for (const struct kube_seen_pod *e = t->seen->pods; a && e; e = e->next)
		json_array_append_new(a, kube_enroll_seen_json(e));
	snprintf(path, sizeof(path), "%s/" SEEN_FILE, t->conf->state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* before the first enrollment nothing has made the state dir */
	if (mkdir(t->conf->state_dir, 0700) < 0 && errno != EEXIST)
		log_debug("cannot make %s: %s", t->conf->state_dir, strerror(errno));
	if (!a || json_dump_file(a, tmp, JSON_COMPACT) < 0 || rename(tmp, path) < 0) {
		log_warn("cannot write %s: %s; pods labelled while the tunnel is down are followed after their next ADD",
			 path, a ? strerror(errno) : "out of memory");
		unlink(tmp);
	}
	json_decref(a);
}

static bool kube_enroll_seen_same(const struct kube_seen_pod *e, json_t *req)
{
	json_t *now = kube_enroll_seen_json(e);
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

static void kube_enroll_remember_one(struct tunnel *t, json_t *req, bool save);

void kube_enroll_remember(struct tunnel *t, json_t *req)
{
	kube_enroll_remember_one(t, req, true);
}

void kube_enroll_load(struct tunnel *t)
{
	char path[4096];
	json_t *a, *e;
	size_t i;

	snprintf(path, sizeof(path), "%s/" SEEN_FILE, t->conf->state_dir);
	a = json_load_file(path, 0, NULL);
	json_array_foreach(a, i, e)
		kube_enroll_remember_one(t, e, false);
	if (json_array_size(a))
		log_info("kubernetes: %zu pods of this node remembered from %s", t->seen ? t->seen->n : 0,
			 path);
	json_decref(a);
}

static void kube_enroll_remember_one(struct tunnel *t, json_t *req, bool save)
{
	const char *uid = kube_enroll_field(req, "uid"), *ns = kube_enroll_field(req, "namespace"), *name = kube_enroll_field(req, "name");
	const char *cid = kube_enroll_field(req, "containerId"), *ifname = kube_enroll_field(req, "ifname");
	const char *netns = kube_enroll_field(req, "netns");
	json_t *ips = json_object_get(req, "ips");
	struct kube_seen_pod *e;

	if (!t->kw || !uid || !ns || !name || !cid || !ifname || !netns || !state_uid_valid(uid))
		return;
	if (!t->seen && !(t->seen = calloc(1, sizeof(*t->seen))))
		return;
	for (e = t->seen->pods; e; e = e->next)
		if (!strcmp(e->uid, uid) && kube_enroll_seen_same(e, req))
			return; /* a CHECK's query: nothing new */
	kube_enroll_seen_drop(t->seen, uid, cid, ifname);
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
		kube_enroll_seen_free(e);
		return;
	}
	e->next = t->seen->pods;
	t->seen->pods = e;
	t->seen->n++;
	if (save)
		kube_enroll_seen_save(t);
}

void kube_enroll_forget(struct tunnel *t, json_t *req)
{
	size_t n;

	if (!t->seen || t->seen->releasing)
		return;
	n = t->seen->n;
	kube_enroll_seen_drop(t->seen, kube_enroll_field(req, "uid"), kube_enroll_field(req, "containerId"), kube_enroll_field(req, "ifname"));
	if (t->seen->n != n)
		kube_enroll_seen_save(t);
}

void kube_enroll_stop(struct tunnel *t)
{
	if (!t->seen)
		return;
	while (t->seen->pods) {
		struct kube_seen_pod *e = t->seen->pods;

		t->seen->pods = e->next;
		kube_enroll_seen_free(e);
	}
	free(t->seen);
	t->seen = NULL;
}

static bool kube_enroll_answered_ok(json_t *resp, const char **error)
{
	*error = json_string_value(json_object_get(resp, "error"));
	if (!*error)
		*error = resp ? "no error given" : "out of memory";
	return json_is_true(json_object_get(resp, "ok"));
}

static void kube_enroll_release(struct tunnel *t, struct pod *p, const char *reason)
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
	if (!kube_enroll_answered_ok(resp, &why))
		log_error("pod %s/%s: release failed: %s", p->namespace, p->name, why);
	json_decref(req);
	json_decref(resp);
}

/* The netns of a remembered pod: its path from the ADD, else (the path is
 * the runtime's, in a mount namespace we do not see, or gone) the /proc
 * scan, whose path then replaces it. An fd or -errno. */
static int kube_enroll_seen_netns(struct tunnel *t, struct kube_seen_pod *e)
{
	struct mesh_ip ips[8];
	size_t n = 0, i;
	char path[300], buf[64];
	json_t *v;
	int fd, ret;

	fd = open(e->netns, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && netns_check_fd(fd) == 0)
		return fd;
	ret = fd < 0 ? -errno : -EINVAL;
	if (fd >= 0)
		close(fd);
	json_array_foreach(e->ips, i, v) {
		const char *s = json_string_value(v);

		if (!s || n == sizeof(ips) / sizeof(ips[0]))
			continue;
		snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(s, "/"), s);
		if (!mesh_ip_parse(buf, &ips[n]))
			n++;
	}
	if (!n)
		return ret;
	fd = pod_netns_find("/proc", e->uid, ips, n, path, sizeof(path));
	if (fd < 0)
		return ret;
	log_info("pod %s/%s: netns %s not usable here (%s); found it in /proc as %s", e->ns, e->name,
		 e->netns, strerror(-ret), path);
	free(e->netns);
	e->netns = strdup(path);
	if (!e->netns) {
		close(fd);
		return -ENOMEM;
	}
	kube_enroll_seen_save(t);
	return fd;
}

static void kube_enroll_enroll(struct tunnel *t, struct kube_seen_pod *e)
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
	if (!kube_enroll_answered_ok(resp, &why) || !json_is_true(json_object_get(resp, "enroll")) ||
	    handoff_mode_get(resp, &mode, err, sizeof(err)) < 0) {
		if (!json_is_true(json_object_get(resp, "ok")))
			log_warn("pod %s/%s: not enrolled after its label change: %s", e->ns, e->name, why);
		json_decref(resp);
		return;
	}
	json_decref(resp);
	fd = kube_enroll_seen_netns(t, e);
	if (fd < 0) {
		log_warn("pod %s/%s: cannot open its netns %s (%s), nor find it in /proc; forgetting it until its next ADD",
			 e->ns, e->name, e->netns, strerror(-fd));
		kube_enroll_seen_drop(t->seen, e->uid, NULL, NULL); /* frees e */
		kube_enroll_seen_save(t);
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
	if (kube_enroll_answered_ok(resp, &why)) {
		log_info("pod %s/%s enrolled after its label change, without a restart", e->ns,
			 e->name);
	} else {
		log_error("pod %s/%s: enrolling after its label change failed: %s", e->ns, e->name, why);
		if (fd < 0)
			fd = kube_enroll_seen_netns(t, e);
		if (fd >= 0 && inpod_remove(fd, err, sizeof(err)) < 0)
			log_warn("pod %s/%s: removing the in-pod rules failed: %s", e->ns, e->name, err);
	}
	if (fd >= 0)
		close(fd);
	json_decref(req);
	json_decref(resp);
}

#define SCAN_CID "proc-scan:"

static bool kube_enroll_seen_has(const struct kube_seen *ks, const char *uid)
{
	for (const struct kube_seen_pod *e = ks->pods; e; e = e->next)
		if (!strcmp(e->uid, uid))
			return true;
	return false;
}

/* Pods of this node that the model enrolls, with IPs, that we know nothing
 * of: their netns from the /proc scan, remembered as if told at ADD. */
static void kube_enroll_scan_unknown(struct tunnel *t)
{
	const struct mesh *m = tunnel_model(t);
	char path[300], cid[128], ip[INET6_ADDRSTRLEN];

	for (size_t i = 0; t->conf->node && i < m->n_pods; i++) {
		const struct mesh_pod *mp = &m->pods[i];
		json_t *req, *ips;
		int fd;

		if (!mp->uid[0] || !mp->n_ips || mp->host_network || strcmp(mp->node, t->conf->node) ||
		    pod_find_uid(t, mp->uid) || kube_enroll_seen_has(t->seen, mp->uid) ||
		    !mesh_pod_enrolled(m, mp->namespace, mp->name, NULL))
			continue;
		fd = pod_netns_find("/proc", mp->uid, mp->ips, mp->n_ips, path, sizeof(path));
		if (fd < 0) {
			log_debug("pod %s/%s: enrolled by the model, never seen at ADD, and no process of it found in /proc (%s)",
				  mp->namespace, mp->name, strerror(-fd));
			continue;
		}
		close(fd);
		ips = json_array();
		for (size_t k = 0; ips && k < mp->n_ips; k++)
			json_array_append_new(ips, json_string(mesh_ip_str(&mp->ips[k], ip, sizeof(ip))));
		snprintf(cid, sizeof(cid), SCAN_CID "%s", mp->uid);
		req = ips ? json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "uid", mp->uid, "namespace",
				      mp->namespace, "name", mp->name, "containerId", cid, "ifname", "eth0",
				      "netns", path, "ips", ips)
			  : NULL;
		log_info("pod %s/%s predates warren: its netns is %s (a process in its cgroup, holding its IP)",
			 mp->namespace, mp->name, path);
		if (req)
			kube_enroll_remember_one(t, req, true);
		json_decref(req);
	}
}

void kube_enroll_reconcile(struct tunnel *t)
{
	const struct mesh *m = tunnel_model(t);
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
		if (!mp || (p->uid[0] && mp->uid[0] && strcmp(p->uid, mp->uid))) {
			/* found by the scan: no runtime DEL will name it */
			if (!strncmp(p->container_id, SCAN_CID, strlen(SCAN_CID))) {
				char uid[128];

				snprintf(uid, sizeof(uid), "%s", p->uid);
				kube_enroll_release(t, p, "gone from the model"); /* frees p */
				kube_enroll_seen_drop(t->seen, uid, NULL, NULL);
				kube_enroll_seen_save(t);
			}
			continue;
		}
		if (!mesh_pod_enrolled(m, p->namespace, p->name, &reason))
			kube_enroll_release(t, p, reason);
	}
	kube_enroll_scan_unknown(t);
	for (e = t->seen->pods; e; e = next) {
		const struct mesh_pod *mp = mesh_find_pod(m, e->ns, e->name);

		next = e->next;
		if (pod_find_uid(t, e->uid) || !mp || (mp->uid[0] && strcmp(mp->uid, e->uid)) ||
		    !mesh_pod_enrolled(m, e->ns, e->name, &why))
			continue;
		kube_enroll_enroll(t, e);
	}
}
