/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model and policy snapshots (contract in snap.h).
 *
 * t->snap_mu orders the publisher's swap with a worker's acquire: without
 * it a worker could read the published pointer, and the main thread free
 * that snapshot (published no more, its count at the main thread's last
 * reference) before the worker's increment. It is held for a few
 * instructions, only when a snapshot changes hands.
 */
#include "tunnel/snap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conf/log.h"
#include "model/authz.h"
#include "model/mesh.h"
#include "tunnel/loop.h"
#include "tunnel/tunnel.h"
#include "tunnel/workers.h"

/* A compiled set, shared by consecutive snapshots when a compile fails.
 * Main thread only (snapshots are freed there). */
struct snap_policy {
	unsigned refs;
	struct authz_set *set;
};

/* What a thread reads before it has a snapshot (and a tunnel with no
 * model yet reads): nothing loaded. */
static const struct tunnel_snap snap_none = { .magic = SNAP_MAGIC };

static _Thread_local const struct tunnel_snap *snap_mine;

const struct tunnel_snap *tunnel_snap_here(const struct tunnel *t)
{
	const struct tunnel_snap *s;

	if (snap_mine)
		return snap_mine;
	s = atomic_load_explicit(&t->snap, memory_order_relaxed);
	return s ? s : &snap_none;
}

void tunnel_snap_use(const struct tunnel_snap *s)
{
	snap_mine = s ? s : &snap_none;
}

static void snap_free(struct tunnel_snap *s)
{
	CHECK_OBJ(s, SNAP_MAGIC);
	mesh_free((struct mesh *)s->mesh);
	if (s->pol && !--s->pol->refs) {
		authz_set_free(s->pol->set);
		free(s->pol);
	}
	s->magic = 0;
	free(s);
}

/* Frees the retired snapshots only the main thread still holds. */
static void snap_sweep(struct tunnel *t)
{
	for (struct tunnel_snap **pp = &t->snap_retired; *pp;) {
		struct tunnel_snap *s = *pp;

		if (atomic_load_explicit(&s->refs, memory_order_acquire) > 1) {
			pp = &s->retired_next;
			continue;
		}
		*pp = s->retired_next;
		snap_free(s);
	}
}

static void snap_retire_cb(struct loop *l, int fd, uint32_t events, void *ctx)
{
	struct tunnel *t = ctx;
	uint64_t v;

	(void)l;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0)
		assert(errno == EAGAIN);
	snap_sweep(t);
}

int tunnel_snap_start(struct tunnel *t)
{
	int ret;

	t->snap_retire_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->snap_retire_fd < 0)
		return -errno;
	ret = loop_add(t->loop, t->snap_retire_fd, EPOLLIN, snap_retire_cb, t);
	if (ret < 0)
		close(t->snap_retire_fd);
	else
		t->snap_started = true;
	return ret;
}

void tunnel_snap_stop(struct tunnel *t)
{
	if (t->snap) {
		t->snap->retired_next = t->snap_retired;
		t->snap_retired = t->snap;
		t->snap = NULL;
	}
	while (t->snap_retired) {
		struct tunnel_snap *s = t->snap_retired;

		t->snap_retired = s->retired_next;
		assert(atomic_load(&s->refs) == 1); /* the workers are gone */
		snap_free(s);
	}
	if (t->snap_started) {
		loop_del(t->loop, t->snap_retire_fd);
		close(t->snap_retire_fd);
		t->snap_started = false;
	}
}

int tunnel_snap_publish(struct tunnel *t, struct mesh *m, struct authz_set *set)
{
	struct tunnel_snap *s = calloc(1, sizeof(*s)), *old = t->snap;
	struct snap_policy *pol = NULL;

	if (set && !(pol = calloc(1, sizeof(*pol)))) {
		free(s);
		s = NULL;
	}
	if (!s) {
		mesh_free(m);
		authz_set_free(set);
		return -ENOMEM;
	}
	s->magic = SNAP_MAGIC;
	atomic_init(&s->refs, 1); /* the main thread's, while published */
	s->generation = m ? m->generation : 0;
	s->mesh = m;
	if (pol) {
		*pol = (struct snap_policy){ .refs = 1, .set = set };
		s->pol = pol;
		s->policies_loaded = true;
	} else if (old) {
		s->pol = old->pol;
		if (s->pol)
			s->pol->refs++;
		s->policies_loaded = old->policies_loaded;
	}
	s->authz = s->pol ? s->pol->set : NULL;
	pthread_mutex_lock(&t->snap_mu);
	atomic_store_explicit(&t->snap, s, memory_order_release);
	pthread_mutex_unlock(&t->snap_mu);
	if (old) {
		old->retired_next = t->snap_retired;
		t->snap_retired = old;
	}
	workers_wake(t);
	snap_sweep(t);
	return 0;
}

const struct tunnel_snap *tunnel_snap_acquire(struct tunnel *t)
{
	struct tunnel_snap *s;

	pthread_mutex_lock(&t->snap_mu);
	s = t->snap;
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&t->snap_mu);
	return s;
}

void tunnel_snap_drop(struct tunnel *t, const struct tunnel_snap *s)
{
	struct tunnel_snap *w = (struct tunnel_snap *)s;
	uint64_t one = 1;
	ssize_t n;

	if (!w)
		return;
	/* Never the last reference: the main thread holds one until it sees
	 * this count reach it (snap_sweep). */
	if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_release) != 2 || !t->snap_started)
		return;
	/* a failure can only be a full counter, which is readable */
	n = write(t->snap_retire_fd, &one, sizeof(one));
	(void)n;
}
