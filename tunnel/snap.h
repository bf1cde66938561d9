/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane's state as the data path reads it (snap.c): the mesh
 * model and the compiled policy set, published together as one immutable,
 * reference-counted snapshot.
 *
 * The main thread builds a new model and policy set off to the side, then
 * publishes them (tunnel_snap_publish): one pointer swap, after which the
 * snapshot and everything it points to never changes. Each worker holds a
 * reference to the snapshot it uses; at the top of each loop iteration
 * (workers.c) it compares it with the published one and, when they differ,
 * takes the new one, re-points its connections' route records into the new
 * model and re-authorizes them (on its own shards only), then drops the
 * old one. Nobody waits for anybody: the main thread never pauses a
 * worker to change the model, and a worker never waits for a reload.
 *
 * Lifetime: a snapshot lives while it is published or any worker still
 * uses it. The main thread keeps a reference to every snapshot it replaced
 * (the retired list) and frees one once its reference is the last: workers
 * only ever drop to that last reference, and say so through an eventfd on
 * the main loop, so a large model is always freed on the main thread, never
 * in a worker's data path. Pointers into a snapshot's model (struct route's
 * local, peer, svc) are valid while the thread that took them holds it.
 *
 * Threads: tunnel_snap_publish, tunnel_snap_start, tunnel_snap_stop: main
 * thread. tunnel_snap_acquire/drop/use: workers. tunnel_snap_here: any
 * thread, returns that thread's snapshot (a worker's own, from its first
 * loop iteration on; on the main thread, and on any thread that never
 * called tunnel_snap_use, the published one), never NULL.
 */
#ifndef WARREN_TUNNEL_SNAP_H
#define WARREN_TUNNEL_SNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SNAP_MAGIC 0x534e4150u

struct tunnel;
struct mesh;
struct authz_set;
struct snap_policy;

struct tunnel_snap {
	unsigned magic;
	atomic_uint refs;
	uint64_t generation;            /* the model's; 0: none loaded yet */
	const struct mesh *mesh;        /* NULL until the first good load */
	const struct authz_set *authz;  /* NULL: no compiled set (nothing to enforce) */
	bool policies_loaded;           /* a compiled set was ever published (tunnel_serving) */
	struct snap_policy *pol;        /* owns authz; shared with the snapshot before
					 * when a compile failed and kept the old set */
	struct tunnel_snap *retired_next; /* main thread: the retired list */
};

/* The retire eventfd on t->loop. 0 or -errno. Before the workers start. */
int tunnel_snap_start(struct tunnel *t);
/* Frees the published and every retired snapshot (the workers stopped and
 * dropped theirs) and the eventfd. Idempotent. */
void tunnel_snap_stop(struct tunnel *t);
/* Publishes model m (owned from here on; its generation set by the
 * caller) with policy set set (owned; NULL: keep the published set), wakes
 * the workers so they pick it up, and frees retired snapshots nobody uses.
 * 0, or -ENOMEM with m and set freed and nothing changed. */
int tunnel_snap_publish(struct tunnel *t, struct mesh *m, struct authz_set *set);
/* A reference to the published snapshot (a worker taking a new one). */
const struct tunnel_snap *tunnel_snap_acquire(struct tunnel *t);
/* Drops a reference from tunnel_snap_acquire (NULL: no-op). */
void tunnel_snap_drop(struct tunnel *t, const struct tunnel_snap *s);
/* This worker reads s from now on (NULL: a snapshot with nothing loaded). */
void tunnel_snap_use(const struct tunnel_snap *s);
const struct tunnel_snap *tunnel_snap_here(const struct tunnel *t);

/* The model, the policies and the generation this thread reads. */
static inline const struct mesh *tunnel_model(const struct tunnel *t)
{
	return tunnel_snap_here(t)->mesh;
}

static inline const struct authz_set *tunnel_policies(const struct tunnel *t)
{
	return tunnel_snap_here(t)->authz;
}

static inline uint64_t tunnel_generation(const struct tunnel *t)
{
	return tunnel_snap_here(t)->generation;
}

#endif
