/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Kubernetes source of the mesh model (kube_watch.c): lists and watches
 * the API server on a loop, keeps the objects the model builder accepts,
 * and hands them to its host to build a model from. Two hosts: the
 * tunnel's meshSource kubernetes (tunnel/kube_tunnel.h) and the waypoint
 * (waypoint/source.h). Nothing here knows either: no tunnel state, no
 * enrollment. Main thread of the loop it was made with.
 *
 * Ownership: kube_watch_new() copies nothing of the host but the struct
 * (its strings must outlive the watch); kube_watch_free() ends every
 * transfer and frees the stores.
 */
#ifndef WARREN_TUNNEL_KUBE_WATCH_H
#define WARREN_TUNNEL_KUBE_WATCH_H

#include <stdbool.h>
#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>

struct loop;
struct kube_watch;

struct kube_watch_host {
	struct loop *loop;
	const char *kubeconfig; /* NULL: the in-cluster service account */
	const char *account;    /* for a 403's message: "the tunnel's account" */
	/* Every resource has listed and something changed: build and install a
	 * model from all (the stored objects, shared: never change one). 0,
	 * or <0 when the build failed (counted; the host logs). */
	int (*rebuild)(void *ctx, json_t *all);
	/* A transfer of the host's (kube_watch_submit) ended; priv is its
	 * CURLOPT_PRIVATE. May be NULL when the host submits none. */
	void (*done)(void *ctx, void *priv, CURLcode res);
	void *ctx;
};

/* Starts listing and watching every resource (the first model is built
 * once all have listed). 0 or -errno (bad credentials: logged; *out is
 * then still set, for kube_watch_free). */
int kube_watch_new(const struct kube_watch_host *h, struct kube_watch **out);
void kube_watch_free(struct kube_watch *kw);
void *kube_watch_host_ctx(const struct kube_watch *kw);
/* false with *reason (static) while some resource has never listed. */
bool kube_watch_listed(const struct kube_watch *kw, const char **reason);
/* Per resource: state, resourceVersion, counters, last sync. */
json_t *kube_watch_state(const struct kube_watch *kw);
/* Prometheus text for the same. */
void kube_watch_write_metrics(const struct kube_watch *kw, FILE *f);

/* The objects the model builder refused, as they stand now (each one's
 * latest version; it leaves this set when a version is accepted or it is
 * deleted): kind, "ns/name", the object (trimmed) and the builder's error.
 * A refusal changes the set, and the host is asked to rebuild. */
typedef void (*kube_refused_fn)(void *ctx, const char *kind, const char *key, json_t *obj,
				const char *err);
void kube_watch_foreach_refused(const struct kube_watch *kw, kube_refused_fn fn, void *ctx);

/* Is kind watched? Then its plural (as in the URL), its API prefixes
 * (prefix[0] tried first; prefix[1] may be NULL) and whether it is an
 * optional CRD (absent: reported and checked again, not fatal). */
bool kube_watch_resource(const char *kind, const char **plural, const char *const **prefix,
			 bool *optional);

/* A request of the host's to the API server on the watch's connection and
 * credentials: a handle for path (its headers in *hdrs, the caller frees
 * both after completion), submitted to the transfer set, or cancelled. */
CURL *kube_watch_request(struct kube_watch *kw, const char *path, const char *content_type,
			 struct curl_slist **hdrs);
int kube_watch_submit(struct kube_watch *kw, CURL *e);
void kube_watch_cancel(struct kube_watch *kw, CURL *e);
/* Re-reads the bearer token file when it changed (or force). */
void kube_watch_token_refresh(struct kube_watch *kw, bool force);

#endif
