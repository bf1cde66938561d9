/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh model's file source and the one way any new model goes in use
 * (mesh_watch.c). Main thread.
 */
#ifndef WARREN_TUNNEL_MESH_WATCH_H
#define WARREN_TUNNEL_MESH_WATCH_H

#include <stdbool.h>
#include <stddef.h>

struct tunnel;
struct mesh;
struct mesh_pod;

/* Load now (errors logged, retried) and watch meshPath. 0 or -errno. */
int mesh_watch_start(struct tunnel *t);
void mesh_watch_stop(struct tunnel *t);
/* The one way a new model (owned, from mesh_build_keeping or
 * mesh_load_path_keeping) goes in use, whatever its source: generation set,
 * policies compiled, published as a snapshot (snap.h: the workers take it
 * at their next loop iteration, the old one is freed once none uses it),
 * the plugin requests waiting for their pod answered. kept: how many held
 * pods m kept from the previous model (warren_mesh_pods_kept). Main
 * thread; it never waits for a worker. */
void mesh_watch_install(struct tunnel *t, struct mesh *m, const char *origin, size_t kept);
/* The keep rule every source applies (mesh_build_keeping's keep and
 * on_kept, ctx a struct mesh_watch_keep): a new model never drops a pod
 * this tunnel holds. Main thread (reads t->pods). */
struct mesh_watch_keep {
	struct tunnel *t;
	const char *origin;
};
bool mesh_watch_held_pod(void *ctx, const struct mesh_pod *mp);
void mesh_watch_log_kept(void *ctx, const struct mesh_pod *mp);
/* A build from origin failed: counted, err kept for the admin API, logged;
 * the model in use (if any) stays. hint says how it gets retried. */
void mesh_watch_failed(struct tunnel *t, const char *origin, const char *err, const char *hint);

#endif
