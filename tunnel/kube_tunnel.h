/* SPDX-License-Identifier: Apache-2.0 */
/*
 * meshSource kubernetes for the tunnel (kube_tunnel.c): the Kubernetes
 * source (tunnel/kube_watch.h) with the tunnel as its host: each model it
 * builds goes in use through mesh_watch_install, then enrollment
 * (kube_enroll.h) and the pods' status annotation (kube_annotate.h) are
 * reconciled with it. Main thread.
 */
#ifndef WARREN_TUNNEL_KUBE_TUNNEL_H
#define WARREN_TUNNEL_KUBE_TUNNEL_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

struct tunnel;

/* Start listing and watching the API server on t->loop (the model is built
 * once every resource has listed). 0 or -errno (bad credentials: logged). */
int kube_tunnel_start(struct tunnel *t);
void kube_tunnel_stop(struct tunnel *t);
/* Per resource: state, resourceVersion, counters, last sync; and the status
 * patches. JSON null when not in kubernetes mode. */
json_t *kube_tunnel_json(const struct tunnel *t);
/* Prometheus text for the same (nothing when not in kubernetes mode). */
void kube_tunnel_metrics(const struct tunnel *t, FILE *f);
/* false with *reason while some resource has never listed. */
bool kube_tunnel_synced(const struct tunnel *t, const char **reason);
/* A pod was enrolled or released here: its status annotation follows
 * (a no-op in file mode). */
void kube_tunnel_pods_changed(struct tunnel *t);

#endif
