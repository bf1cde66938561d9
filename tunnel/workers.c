/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data-path worker threads (contract in workers.h).
 *
 * Each worker runs its own loop. Every pod has one shard per worker
 * (pods.c): its own SO_REUSEPORT listeners on 15001/15006/15008, so the
 * kernel spreads the pod's connections over the workers, and its own
 * connections, HBONE pool and inbound HBONE connections, touched only by
 * that worker. The main thread keeps the control plane (handoff, admin,
 * metrics, readiness, mesh reload, certificate renewal, adoption).
 *
 * Sharing, the whole of it:
 *  - the mesh model and the compiled policies reach the workers as
 *    immutable snapshots (snap.h): the main thread publishes a new one
 *    without waiting for anybody; each worker takes it at the top of its
 *    next loop iteration (worker_guard), re-points its own connections'
 *    routes into it and re-authorizes them, and lets the old one go;
 *  - a worker holds its own mutex while it runs callbacks and releases it
 *    while it waits in epoll_wait() (loop guard);
 *  - the main thread takes every worker's mutex, in index order
 *    (workers_isolate), only around what changes or reads a worker's
 *    shards: a pod added or removed (its shards, listeners and identity
 *    reference), a certificate swapped in, shards' connections listed or
 *    counted for the admin API, metrics and drain. Everything else it does
 *    (reading files, building and compiling a model, serializing answers,
 *    netlink round trips) runs while the workers run;
 *  - what workers share with each other (the metrics series and the
 *    access log) has its own lock (metrics.c, accesslog.c), taken last;
 *  - a worker's inbox (HBONE connections handed over by another worker,
 *    workers_hbone_accept) has its own lock, taken last too, and so is
 *    t->snap_mu (snap.c).
 * A worker never takes another worker's mutex, so there is no cycle.
 * "wanted" makes a worker that just woke step aside when the main thread
 * is waiting, so a busy data path cannot starve the control plane.
 */
#include "tunnel/workers.h"

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conf/log.h"
#include "tunnel/harden.h"
#include "tunnel/hbone_ring.h"
#include "tunnel/loop.h"
#include "tunnel/mtls.h"
#include "tunnel/pods.h"
#include "tunnel/proxy.h"
#include "tunnel/snap.h"
#include "tunnel/tunnel.h"

/* An accepted HBONE connection queued to another worker's shard. */
struct handoff {
	struct handoff *next;
	struct pod *shard;
	int fd;
	struct sockaddr_storage peer;
};

struct worker {
	unsigned index;
	struct tunnel *t;
	struct loop *loop;
	pthread_t thread;
	bool started;
	sem_t up;                /* posted once the thread dropped cap_sys_ptrace */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint wanted;      /* main threads waiting for mu (0 or 1) */
	atomic_uint hbone_conns; /* live inbound HBONE connections it serves */
	const struct tunnel_snap *snap; /* the model and policies it reads (snap.h) */
	int inbox_fd;            /* eventfd: something is in inbox */
	pthread_mutex_t inbox_mu;
	struct handoff *inbox;   /* newest first */
};

/* The safe point: no callback of this worker is running, so none holds a
 * pointer into the model. Takes the published snapshot if it changed. */
static void worker_snap_update(struct worker *w)
{
	struct tunnel *t = w->t;
	const struct tunnel_snap *old = w->snap;

	if (old && atomic_load_explicit(&t->snap, memory_order_relaxed) == old)
		return;
	if (!old && !atomic_load_explicit(&t->snap, memory_order_relaxed)) {
		tunnel_snap_use(NULL); /* nothing published yet */
		return;
	}
	w->snap = tunnel_snap_acquire(t);
	tunnel_snap_use(w->snap);
	proxy_snap_changed(t, w->index);
	tunnel_snap_drop(t, old);
}

static void worker_guard(void *ctx, bool enter)
{
	struct worker *w = ctx;

	if (!enter) {
		pthread_mutex_unlock(&w->mu);
		return;
	}
	pthread_mutex_lock(&w->mu);
	while (atomic_load(&w->wanted))
		pthread_cond_wait(&w->cv, &w->mu);
	worker_snap_update(w);
}

void workers_isolate(struct tunnel *t)
{
	if (t->isolated++)
		return;
	for (unsigned i = 0; i < t->n_workers; i++) {
		struct worker *w = &t->workers[i];

		atomic_fetch_add(&w->wanted, 1);
		pthread_mutex_lock(&w->mu);
	}
}

void workers_release(struct tunnel *t)
{
	assert(t->isolated > 0);
	if (--t->isolated)
		return;
	for (unsigned i = t->n_workers; i-- > 0;) {
		struct worker *w = &t->workers[i];

		atomic_fetch_sub(&w->wanted, 1);
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
}

void worker_isolate(struct tunnel *t, unsigned i)
{
	struct worker *w;

	if (t->isolated || i >= t->n_workers)
		return; /* all of them are already, or there are none */
	w = &t->workers[i];
	atomic_fetch_add(&w->wanted, 1);
	pthread_mutex_lock(&w->mu);
}

void worker_release(struct tunnel *t, unsigned i)
{
	struct worker *w;

	if (t->isolated || i >= t->n_workers)
		return;
	w = &t->workers[i];
	atomic_fetch_sub(&w->wanted, 1);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void workers_wake(struct tunnel *t)
{
	for (unsigned i = 0; i < t->n_workers; i++)
		loop_wake(t->workers[i].loop);
}

static void worker_inbox_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct worker *w = ctx;
	struct handoff *h, *fifo = NULL;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		assert(errno == EAGAIN);
	pthread_mutex_lock(&w->inbox_mu);
	h = w->inbox;
	w->inbox = NULL;
	pthread_mutex_unlock(&w->inbox_mu);
	while (h) { /* oldest first */
		struct handoff *next = h->next;

		h->next = fifo;
		fifo = h;
		h = next;
	}
	for (h = fifo; h; h = fifo) {
		fifo = h->next;
		CHECK_OBJ(h->shard, POD_MAGIC);
		mtls_hbone_accept(h->shard, h->fd, &h->peer);
		free(h);
	}
}

static void worker_inbox_drop(struct worker *w, const struct pod *only)
{
	pthread_mutex_lock(&w->inbox_mu);
	for (struct handoff **pp = &w->inbox; *pp;) {
		struct handoff *h = *pp;

		if (only && h->shard != only) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		close(h->fd);
		free(h);
	}
	pthread_mutex_unlock(&w->inbox_mu);
}

void workers_hbone_conns_add(struct tunnel *t, unsigned w, int delta)
{
	assert(w < t->n_workers);
	atomic_fetch_add(&t->workers[w].hbone_conns, (unsigned)delta);
}

void workers_hbone_accept(struct pod *p, int fd, const struct sockaddr_storage *peer)
{
	struct tunnel *t = p->t;
	unsigned best = p->worker, least = atomic_load(&t->workers[best].hbone_conns);
	struct pod *s = (struct pod *)pod_primary(p);
	struct handoff *h;

	for (unsigned i = 0; i < t->n_workers; i++) {
		unsigned n = atomic_load(&t->workers[i].hbone_conns);

		if (n < least) {
			least = n;
			best = i;
		}
	}
	h = best != p->worker ? malloc(sizeof(*h)) : NULL;
	if (!h) {
		mtls_hbone_accept(p, fd, peer);
		return;
	}
	while (s->worker != best) /* every worker has a shard of the pod */
		s = s->next_shard;
	*h = (struct handoff){ .shard = s, .fd = fd, .peer = *peer };
	pthread_mutex_lock(&t->workers[best].inbox_mu);
	h->next = t->workers[best].inbox;
	t->workers[best].inbox = h;
	pthread_mutex_unlock(&t->workers[best].inbox_mu);
	log_debug("HBONE connection to pod %s/%s handed from worker %u to worker %u (%u inbound HBONE connections)",
		  p->namespace, p->name, p->worker, best, least);
	{
		uint64_t one = 1;
		/* a failure can only be a full counter, which is readable */
		ssize_t n = write(t->workers[best].inbox_fd, &one, sizeof(one));

		(void)n;
	}
}

void workers_forget_shard(struct pod *s)
{
	worker_inbox_drop(&s->t->workers[s->worker], s);
}

int workers_create(struct tunnel *t, unsigned n)
{
	assert(n >= 1 && !t->workers);
	t->workers = calloc(n, sizeof(*t->workers));
	if (!t->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &t->workers[i];

		*w = (struct worker){ .index = i, .t = t, .inbox_fd = -1 };
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cv, NULL);
		pthread_mutex_init(&w->inbox_mu, NULL);
		t->n_workers++;
		w->loop = loop_new();
		w->inbox_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (!w->loop || w->inbox_fd < 0 ||
		    loop_add(w->loop, w->inbox_fd, EPOLLIN, worker_inbox_cb, w) < 0) {
			workers_free(t);
			return -ENOMEM;
		}
		loop_set_guard(w->loop, worker_guard, w);
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "warren-w%u", w->index);
	pthread_setname_np(pthread_self(), name);
	/* only the main thread re-adopts pods (harden.h) */
	if (w->t->conf->keep_capabilities && (ret = harden_drop_thread_cap(CAP_SYS_PTRACE)) < 0)
		log_error("worker %u: cannot drop cap_sys_ptrace: %s", w->index, strerror(-ret));
	hbone_ring_cache_enable();
	sem_post(&w->up);
	ret = loop_run(w->loop);
	hbone_ring_cache_flush();
	/* stopped: it reads no model any more (the main thread frees them) */
	tunnel_snap_use(NULL);
	tunnel_snap_drop(w->t, w->snap);
	w->snap = NULL;
	if (ret < 0) {
		/* Its pods' connections would queue unanswered: stop the
		 * tunnel, which fails closed (the capture stays, nothing
		 * bypasses it). */
		log_error("worker %u: event loop failed: %s; stopping", w->index, strerror(-ret));
		loop_stop(w->t->loop);
	}
	return NULL;
}

int workers_start(struct tunnel *t)
{
	for (unsigned i = 0; i < t->n_workers; i++) {
		struct worker *w = &t->workers[i];
		int ret;

		sem_init(&w->up, 0, 0);
		ret = pthread_create(&w->thread, NULL, worker_main, w);
		if (ret) {
			log_error("cannot start worker thread %u: %s", i, strerror(ret));
			sem_destroy(&w->up);
			workers_stop(t);
			return -ret;
		}
		w->started = true;
		/* it runs with no capability it does not need from here on */
		while (sem_wait(&w->up) < 0 && errno == EINTR)
			;
		sem_destroy(&w->up);
	}
	log_info("%u data-path worker thread%s", t->n_workers, t->n_workers == 1 ? "" : "s");
	return 0;
}

void workers_stop(struct tunnel *t)
{
	workers_isolate(t);
	for (unsigned i = 0; i < t->n_workers; i++)
		loop_stop(t->workers[i].loop);
	workers_release(t);
	for (unsigned i = 0; i < t->n_workers; i++) {
		struct worker *w = &t->workers[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		w->started = false;
	}
}

void workers_free(struct tunnel *t)
{
	if (!t->workers)
		return;
	for (unsigned i = 0; i < t->n_workers; i++) {
		struct worker *w = &t->workers[i];

		assert(!w->started);
		worker_inbox_drop(w, NULL);
		if (w->inbox_fd >= 0) {
			if (w->loop)
				loop_del(w->loop, w->inbox_fd);
			close(w->inbox_fd);
		}
		loop_free(w->loop);
		pthread_mutex_destroy(&w->inbox_mu);
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
	}
	free(t->workers);
	t->workers = NULL;
	t->n_workers = 0;
}

struct loop *worker_loop(const struct tunnel *t, unsigned i)
{
	assert(i < t->n_workers);
	return t->workers[i].loop;
}
