/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ambient.istio.io/redirection on the pods' status (contract in
 * tunnel/kube_annotate.h).
 *
 * As istio-cni does, so that Istio's tools read warren's pods: "enabled"
 * on every pod this tunnel has enrolled, removed from every pod of this
 * node that carries it and is not enrolled here. Compared against the
 * model after each rebuild and each pod added or released, so a change
 * missed during an outage (or a tunnel restart) is made at the next sync.
 * Removals wait for the re-adoption after a restart: a pod not yet
 * re-adopted is not released.
 */
#include "tunnel/kube_annotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"
#include "tunnel/loop.h"
#include "tunnel/pods.h"
#include "tunnel/tunnel.h"

#define REDIRECTION "ambient.istio.io/redirection"
#define PATCH_RETRY_MS 5000

/* One PATCH of a pod's status annotation in flight. */
struct kpatch {
	struct kube_annotate *ka;
	struct kpatch *next;
	CURL *easy;
	struct curl_slist *hdrs;
	char key[320]; /* "ns/name" */
	bool enable;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t ka_kpatch_discard(char *p, size_t size, size_t nmemb, void *ud)
{
	return size * nmemb;
}

static bool ka_kpatch_inflight(const struct kube_annotate *ka, const char *key)
{
	for (const struct kpatch *kp = ka->patches; kp; kp = kp->next)
		if (!strcmp(kp->key, key))
			return true;
	return false;
}

static void ka_patch(struct kube_annotate *ka, const char *ns, const char *name, bool enable)
{
	struct kpatch *kp;
	char *path = NULL;

	kp = calloc(1, sizeof(*kp));
	if (!kp)
		return;
	kp->ka = ka;
	kp->enable = enable;
	snprintf(kp->key, sizeof(kp->key), "%s/%s", ns, name);
	if (ka_kpatch_inflight(ka, kp->key)) {
		free(kp);
		return;
	}
	if (asprintf(&path, "/api/v1/namespaces/%s/pods/%s/status", ns, name) < 0)
		path = NULL;
	kp->easy = path ? kube_watch_request(ka->kw, path, "application/merge-patch+json", &kp->hdrs)
			: NULL;
	free(path);
	if (!kp->easy) {
		free(kp);
		kube_annotate_soon(ka, PATCH_RETRY_MS);
		return;
	}
	curl_easy_setopt(kp->easy, CURLOPT_CUSTOMREQUEST, "PATCH");
	curl_easy_setopt(kp->easy, CURLOPT_COPYPOSTFIELDS,
			 enable ? "{\"metadata\":{\"annotations\":{\"" REDIRECTION "\":\"enabled\"}}}"
				: "{\"metadata\":{\"annotations\":{\"" REDIRECTION "\":null}}}");
	curl_easy_setopt(kp->easy, CURLOPT_PRIVATE, kp);
	curl_easy_setopt(kp->easy, CURLOPT_WRITEFUNCTION, ka_kpatch_discard);
	curl_easy_setopt(kp->easy, CURLOPT_ERRORBUFFER, kp->errbuf);
	curl_easy_setopt(kp->easy, CURLOPT_TIMEOUT_MS, 30000L);
	if (kube_watch_submit(ka->kw, kp->easy) < 0) {
		curl_easy_cleanup(kp->easy);
		curl_slist_free_all(kp->hdrs);
		free(kp);
		kube_annotate_soon(ka, PATCH_RETRY_MS);
		return;
	}
	kp->next = ka->patches;
	ka->patches = kp;
}

static void ka_kpatch_free(struct kpatch *kp)
{
	struct kube_annotate *ka = kp->ka;

	for (struct kpatch **pp = &ka->patches; *pp; pp = &(*pp)->next) {
		if (*pp == kp) {
			*pp = kp->next;
			break;
		}
	}
	kube_watch_cancel(ka->kw, kp->easy);
	curl_easy_cleanup(kp->easy);
	curl_slist_free_all(kp->hdrs);
	free(kp);
}

void kube_annotate_done(struct kpatch *kp, CURLcode res)
{
	struct kube_annotate *ka = kp->ka;
	long code = 0;

	curl_easy_getinfo(kp->easy, CURLINFO_RESPONSE_CODE, &code);
	if (res == CURLE_OK && code == 200) {
		ka->ok++;
		log_info("kubernetes: pod %s: %s " REDIRECTION, kp->key,
			 kp->enable ? "set" : "removed");
	} else if (code == 404) {
		log_debug("kubernetes: pod %s is gone; no annotation to change", kp->key);
	} else {
		ka->failed++;
		log_warn("kubernetes: pod %s: cannot %s " REDIRECTION ": %s (HTTP %ld); retrying in %d s",
			 kp->key, kp->enable ? "set" : "remove",
			 code == 403 ? "forbidden: the tunnel needs patch on pods/status"
			 : kp->errbuf[0] ? kp->errbuf : curl_easy_strerror(res),
			 code, PATCH_RETRY_MS / 1000);
		if (code == 401)
			kube_watch_token_refresh(ka->kw, true);
		kube_annotate_soon(ka, PATCH_RETRY_MS);
	}
	ka_kpatch_free(kp);
}

static bool ka_redirection_enabled(const struct mesh_pod *mp)
{
	const char *v = mesh_label(&mp->annotations, REDIRECTION);

	return v && !strcmp(v, "enabled");
}

static void ka_compare_cb(struct loop *l, void *ctx)
{
	struct kube_annotate *ka = ctx;
	struct tunnel *t = ka->t;
	const struct mesh *m = tunnel_model(t);

	ka->timer = NULL;
	if (!m)
		return;
	for (const struct pod *p = t->pods; p; p = p->next) {
		const struct mesh_pod *mp = mesh_find_pod(m, p->namespace, p->name);

		/* same name, another pod (recreated): wait for the model */
		if (!mp || (p->uid[0] && mp->uid[0] && strcmp(p->uid, mp->uid)))
			continue;
		if (!ka_redirection_enabled(mp))
			ka_patch(ka, p->namespace, p->name, true);
	}
	if (!t->adopted)
		return;
	for (size_t i = 0; i < m->n_pods; i++) {
		const struct mesh_pod *mp = &m->pods[i];
		const struct pod *p;

		if (strcmp(mp->node, t->conf->node) || !ka_redirection_enabled(mp))
			continue;
		for (p = t->pods; p; p = p->next)
			if (!strcmp(p->namespace, mp->namespace) && !strcmp(p->name, mp->name))
				break;
		if (!p)
			ka_patch(ka, mp->namespace, mp->name, false);
	}
}

void kube_annotate_soon(struct kube_annotate *ka, uint64_t ms)
{
	if (!ka->timer)
		ka->timer = loop_timer_add(ka->t->loop, ms, ka_compare_cb, ka);
}

void kube_annotate_stop(struct kube_annotate *ka)
{
	while (ka->patches)
		ka_kpatch_free(ka->patches);
	if (ka->timer)
		loop_timer_cancel(ka->t->loop, ka->timer);
	ka->timer = NULL;
}
