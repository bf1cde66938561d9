/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshSource kubernetes (kube_watch.c): lists and watches the API server
 * on the main loop and builds the model from it. Main thread.
 */
#ifndef WARREN_TUNNEL_KUBE_WATCH_H
#define WARREN_TUNNEL_KUBE_WATCH_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

struct tunnel;

/* Start listing and watching the API server on t->loop (the model is built
 * once every resource has listed). 0 or -errno (bad credentials: logged). */
int kube_watch_start(struct tunnel *t);
void kube_watch_stop(struct tunnel *t);
/* Per resource: state, resourceVersion, counters, last sync; NULL when not
 * in kubernetes mode. */
json_t *kube_watch_json(const struct tunnel *t);
/* Prometheus text for the same (nothing when not in kubernetes mode). */
void kube_watch_metrics(const struct tunnel *t, FILE *f);
/* false with *reason while some resource has never listed. */
bool kube_watch_synced(const struct tunnel *t, const char **reason);
/* A pod was enrolled or released here: its status annotation follows
 * (a no-op in file mode). */
void kube_watch_pods_changed(struct tunnel *t);
/* Is kind watched? Then its plural (as in the URL), its API prefixes
 * (prefix[0] tried first; prefix[1] may be NULL) and whether it is an
 * optional CRD (absent: reported and checked again, not fatal). */
bool kube_watch_resource(const char *kind, const char **plural, const char *const **prefix,
			 bool *optional);

#endif
