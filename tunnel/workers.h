/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The data-path worker threads (workers.c, which says how the threads
 * share the tunnel's state): n loops, one thread each, and the handoff of
 * inbound HBONE connections between a pod's shards. Main thread, except
 * where a function says otherwise.
 */
#ifndef WARREN_TUNNEL_WORKERS_H
#define WARREN_TUNNEL_WORKERS_H

#include <sys/socket.h>

struct tunnel;
struct pod;
struct loop;

/* n worker loops (no threads yet). 0 or -ENOMEM. */
int workers_create(struct tunnel *t, unsigned n);
/* Start the threads (after the capability drop: capabilities are per
 * thread and inherited). 0 or -errno (none left running). */
int workers_start(struct tunnel *t);
/* Stop and join the threads; their loops stay for the teardown. */
void workers_stop(struct tunnel *t);
void workers_free(struct tunnel *t);
/* Pause every worker (between two of its callbacks) until the matching
 * workers_release(): for what changes or reads a worker's shards (a pod
 * added or removed, listeners, connections, pools, a certificate swapped
 * in). Pairs nest. Keep what runs in between short: every worker's data
 * path waits for it. The model and the policies need none of this (they
 * are published as snapshots, snap.h). */
void workers_isolate(struct tunnel *t);
void workers_release(struct tunnel *t);
/* workers_isolate() for worker i alone (what only its shards hold); no
 * pairs nested inside, none while workers_isolate() holds them all. */
void worker_isolate(struct tunnel *t, unsigned i);
void worker_release(struct tunnel *t, unsigned i);
/* Make every worker go round its loop (and so take a new snapshot). Any
 * thread. */
void workers_wake(struct tunnel *t);
struct loop *worker_loop(const struct tunnel *t, unsigned i);
/* An HBONE connection accepted on shard p (fd owned): served here, or, when
 * another worker serves fewer inbound HBONE connections, queued to that
 * worker's shard of the same pod. A pooled connection carries many
 * streams, so spreading the few of them by the kernel's hash alone can
 * leave a worker idle. */
void workers_hbone_accept(struct pod *p, int fd, const struct sockaddr_storage *peer);
/* Live inbound HBONE connections served by worker w (mtls.c). */
void workers_hbone_conns_add(struct tunnel *t, unsigned w, int delta);
/* Shard s is going away: close the connections queued to it (main
 * thread, workers isolated). */
void workers_forget_shard(struct pod *s);

#endif
