/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data-path worker threads (contract in tunnel.h).
 *
 * Each worker runs its own loop. Every pod has one shard per worker
 * (pods.c): its own SO_REUSEPORT listeners on 15001/15006/15008, so the
 * kernel spreads the pod's connections over the workers, and its own
 * connections, HBONE pool and inbound HBONE connections, touched only by
 * that worker. The main thread keeps the control plane (handoff, admin,
 * metrics, readiness, mesh reload, certificate renewal, adoption).
 *
 * Locking, the whole of it:
 *  - a worker holds its own mutex while it runs callbacks and releases it
 *    while it waits in epoll_wait() (loop guard);
 *  - the main loop's guard takes every worker's mutex, in index order, so
 *    control-plane code runs exactly as it did single-threaded: it may
 *    read and change any shard, the model, the policies, the identities;
 *  - what workers share with each other (metrics and the access log) has
 *    its own lock inside metrics.c, taken last.
 * A worker never takes another worker's mutex, so there is no cycle.
 * "wanted" makes a worker that just woke step aside when the main thread
 * is waiting, so a busy data path cannot starve the control plane.
 */
#include "tunnel/tunnel.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/log.h"

struct worker {
	unsigned index;
	struct tunnel *t;
	struct loop *loop;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_uint wanted; /* main threads waiting for mu (0 or 1) */
};

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
}

static void main_guard(void *ctx, bool enter)
{
	struct tunnel *t = ctx;

	if (enter)
		workers_lock_all(t);
	else
		workers_unlock_all(t);
}

void workers_lock_all(struct tunnel *t)
{
	for (unsigned i = 0; i < t->n_workers; i++) {
		struct worker *w = &t->workers[i];

		atomic_fetch_add(&w->wanted, 1);
		pthread_mutex_lock(&w->mu);
	}
}

void workers_unlock_all(struct tunnel *t)
{
	for (unsigned i = t->n_workers; i-- > 0;) {
		struct worker *w = &t->workers[i];

		atomic_fetch_sub(&w->wanted, 1);
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
}

int workers_create(struct tunnel *t, unsigned n)
{
	assert(n >= 1 && !t->workers);
	t->workers = calloc(n, sizeof(*t->workers));
	if (!t->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &t->workers[i];

		*w = (struct worker){ .index = i, .t = t };
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cv, NULL);
		t->n_workers++;
		w->loop = loop_new();
		if (!w->loop) {
			workers_free(t);
			return -ENOMEM;
		}
		loop_set_guard(w->loop, worker_guard, w);
	}
	loop_set_guard(t->loop, main_guard, t);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	int ret;

	snprintf(name, sizeof(name), "warren-w%u", w->index);
	pthread_setname_np(pthread_self(), name);
	ret = loop_run(w->loop);
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
		int ret = pthread_create(&w->thread, NULL, worker_main, w);

		if (ret) {
			log_error("cannot start worker thread %u: %s", i, strerror(ret));
			workers_stop(t);
			return -ret;
		}
		w->started = true;
	}
	log_info("%u data-path worker thread%s", t->n_workers, t->n_workers == 1 ? "" : "s");
	return 0;
}

void workers_stop(struct tunnel *t)
{
	workers_lock_all(t);
	for (unsigned i = 0; i < t->n_workers; i++)
		loop_stop(t->workers[i].loop);
	workers_unlock_all(t);
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
	loop_set_guard(t->loop, NULL, NULL);
	for (unsigned i = 0; i < t->n_workers; i++) {
		struct worker *w = &t->workers[i];

		assert(!w->started);
		loop_free(w->loop);
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
