/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reactor behind tunnel/loop.h: level-triggered epoll, a table of
 * registrations indexed by fd (grown on demand), and a binary min-heap of
 * one-shot timers ordered by (deadline, insertion order). Each epoll event
 * carries the fd and the generation of its registration, so an event
 * collected for a registration that was deleted (or deleted and re-added
 * for a new fd with the same number) earlier in the round is dropped.
 * loop_stop() only sets an atomic flag and writes an eventfd, so it is
 * safe from a callback, from another thread without the guard (workers.c
 * stops the main loop from a worker) and from a signal handler on any
 * thread. Release store, acquire loads: what the stopper wrote before is
 * visible once loop_run() returns. The round in progress is finished first
 * (edge-triggered users would lose its events otherwise).
 *
 * Threads (tunnel/workers.c): a loop's state, but the stop flag, is only
 * touched while its guard is held. loop_run() holds it from the moment
 * epoll_wait() returns until it is about to wait again, so another thread
 * that takes the same guard may add, delete and arm timers; a timer armed
 * from another thread wakes the loop, which then recomputes its timeout.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "tunnel/loop.h"

#define LOOP_MAX_EVENTS 64
/* epoll data for the wakeup eventfd: never a valid (fd, generation) pair. */
#define LOOP_WAKE_TOKEN UINT64_MAX

struct loop_reg {
	loop_fd_cb cb;     /* NULL: slot free */
	void *ctx;
	uint32_t events;
	uint32_t gen;
};

struct loop_timer {
	uint64_t when;     /* loop_now_ms() deadline */
	uint64_t seq;      /* ties fire in the order they were added */
	size_t idx;        /* position in the heap */
	loop_timer_cb cb;
	void *ctx;
};

struct loop {
	int epfd;
	int wakefd;
	struct loop_reg *regs;
	size_t nregs;
	uint32_t gen;
	struct loop_timer **heap;
	size_t nheap, capheap;
	uint64_t seq;
	atomic_bool stop;
	loop_guard_cb guard;
	void *guard_ctx;
};

/* Lock-free, so a signal handler may store it (C11 7.14.1.1). */
_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "loop_stop() needs a lock-free atomic_bool");

static bool loop_stopping(struct loop *l)
{
	return atomic_load_explicit(&l->stop, memory_order_acquire);
}

/* The loop this thread is running, so a timer armed from elsewhere wakes it. */
static _Thread_local struct loop *loop_running_loop;

struct loop *loop_current(void)
{
	return loop_running_loop;
}

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LOOP_WAKE_TOKEN };
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd < 0 || l->wakefd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0) {
		loop_free(l);
		return NULL;
	}
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->regs);
	if (l->wakefd >= 0)
		close(l->wakefd);
	if (l->epfd >= 0)
		close(l->epfd);
	free(l);
}

static struct loop_reg *loop_reg_get(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->nregs || !l->regs[fd].cb)
		return NULL;
	return &l->regs[fd];
}

static int loop_epoll_set(struct loop *l, int op, int fd, const struct loop_reg *reg)
{
	struct epoll_event ev = {
		.events = reg->events,
		.data.u64 = (uint64_t)reg->gen << 32 | (uint32_t)fd,
	};

	return epoll_ctl(l->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx)
{
	struct loop_reg *reg;
	int ret;

	assert(cb);
	if (fd < 0)
		return -EBADF;
	if (loop_reg_get(l, fd))
		return -EEXIST;
	if ((size_t)fd >= l->nregs) {
		size_t n = l->nregs ? l->nregs : 64;

		while (n <= (size_t)fd)
			n *= 2;
		reg = realloc(l->regs, n * sizeof(*reg));
		if (!reg)
			return -ENOMEM;
		memset(reg + l->nregs, 0, (n - l->nregs) * sizeof(*reg));
		l->regs = reg;
		l->nregs = n;
	}
	reg = &l->regs[fd];
	*reg = (struct loop_reg){ .cb = cb, .ctx = ctx, .events = events, .gen = ++l->gen };
	ret = loop_epoll_set(l, EPOLL_CTL_ADD, fd, reg);
	if (ret < 0)
		reg->cb = NULL;
	return ret;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	struct loop_reg *reg = loop_reg_get(l, fd);
	uint32_t old;
	int ret;

	if (!reg)
		return -ENOENT;
	/* Callers recompute interest after every event; skip the no-op. */
	if (reg->events == events)
		return 0;
	old = reg->events;
	reg->events = events;
	ret = loop_epoll_set(l, EPOLL_CTL_MOD, fd, reg);
	if (ret < 0)
		reg->events = old;
	return ret;
}

int loop_set(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ctx)
{
	struct loop_reg *reg = loop_reg_get(l, fd), old;
	int ret;

	if (!reg)
		return loop_add(l, fd, events, cb, ctx);
	assert(cb);
	/* A new generation, so events already collected for the old
	 * callback this round are dropped instead of reaching the new one. */
	old = *reg;
	*reg = (struct loop_reg){ .cb = cb, .ctx = ctx, .events = events, .gen = ++l->gen };
	ret = loop_epoll_set(l, EPOLL_CTL_MOD, fd, reg);
	if (ret < 0)
		*reg = old;
	return ret;
}

void loop_forget(struct loop *l, int fd)
{
	struct loop_reg *reg = loop_reg_get(l, fd);

	if (reg)
		reg->cb = NULL;
}

int loop_del(struct loop *l, int fd)
{
	struct loop_reg *reg = loop_reg_get(l, fd);

	if (!reg)
		return -ENOENT;
	/* Forget it even if the kernel already did (fd closed too early). */
	reg->cb = NULL;
	return epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

/* --- timers: binary min-heap --- */

static bool loop_timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void loop_heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void loop_heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0 && loop_timer_before(t, l->heap[(i - 1) / 2])) {
		loop_heap_set(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	loop_heap_set(l, i, t);
}

static void loop_heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && loop_timer_before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!loop_timer_before(l->heap[c], t))
			break;
		loop_heap_set(l, i, l->heap[c]);
		i = c;
	}
	loop_heap_set(l, i, t);
}

static void loop_heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->idx;
	struct loop_timer *last;

	assert(i < l->nheap && l->heap[i] == t);
	last = l->heap[--l->nheap];
	if (last == t)
		return;
	loop_heap_set(l, i, last);
	loop_heap_up(l, i);
	loop_heap_down(l, last->idx);
}

struct loop_timer *loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *ctx)
{
	struct loop_timer *t;

	assert(cb);
	if (l->nheap == l->capheap) {
		size_t n = l->capheap ? 2 * l->capheap : 16;
		struct loop_timer **h = realloc(l->heap, n * sizeof(*h));

		if (!h)
			return NULL;
		l->heap = h;
		l->capheap = n;
	}
	t = malloc(sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct loop_timer){ .when = loop_now_ms() + ms, .seq = l->seq++, .cb = cb, .ctx = ctx };
	loop_heap_set(l, l->nheap++, t);
	loop_heap_up(l, t->idx);
	if (loop_running_loop != l)
		loop_wake(l);
	return t;
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t)
		return;
	loop_heap_remove(l, t);
	free(t);
}

/* Fires due timers. Ones added by these callbacks wait for the next round,
 * so a callback re-arming itself with 0 ms cannot starve the fds. */
static void loop_timers_run(struct loop *l)
{
	uint64_t now = loop_now_ms(), seq_limit = l->seq;

	while (l->nheap && !loop_stopping(l)) {
		struct loop_timer *t = l->heap[0];
		loop_timer_cb cb = t->cb;
		void *ctx = t->ctx;

		if (t->when > now || t->seq >= seq_limit)
			break;
		loop_heap_remove(l, t);
		free(t);
		cb(l, ctx);
	}
}

static int loop_next_timeout(const struct loop *l)
{
	uint64_t now, when;

	if (!l->nheap)
		return -1;
	now = loop_now_ms();
	when = l->heap[0]->when;
	if (when <= now)
		return 0;
	return when - now > INT_MAX ? INT_MAX : (int)(when - now);
}

void loop_set_guard(struct loop *l, loop_guard_cb cb, void *ctx)
{
	l->guard = cb;
	l->guard_ctx = ctx;
}

static void loop_guard_call(struct loop *l, bool enter)
{
	if (l->guard)
		l->guard(l->guard_ctx, enter);
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int ret = 0;

	loop_running_loop = l;
	loop_guard_call(l, true);
	while (!loop_stopping(l)) {
		int timeout = loop_next_timeout(l), n;

		loop_guard_call(l, false);
		n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout);
		loop_guard_call(l, true);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t token = evs[i].data.u64;
			int fd = (int)(uint32_t)token;
			struct loop_reg *reg;
			uint32_t ev;

			if (token == LOOP_WAKE_TOKEN) {
				uint64_t v;

				/* Drained so the next loop_stop() wakes us again. */
				if (read(l->wakefd, &v, sizeof(v)) < 0)
					assert(errno == EAGAIN);
				continue;
			}
			/* Looked up now: an earlier callback may have deleted it. */
			reg = loop_reg_get(l, fd);
			if (!reg || reg->gen != (uint32_t)(token >> 32))
				continue;
			/* Nor report interest that was dropped earlier in this round. */
			ev = evs[i].events & (reg->events | EPOLLERR | EPOLLHUP);
			if (ev)
				reg->cb(l, fd, ev, reg->ctx);
		}
		loop_timers_run(l);
	}
	/* Consumed: the next loop_run() runs until the next loop_stop(). */
	if (!ret)
		atomic_store_explicit(&l->stop, false, memory_order_relaxed);
	loop_guard_call(l, false);
	loop_running_loop = NULL;
	return ret;
}

void loop_wake(struct loop *l)
{
	uint64_t one = 1;
	int saved = errno;
	ssize_t n;

	/* A failure can only be a full counter, which is readable: awake. */
	n = write(l->wakefd, &one, sizeof(one));
	(void)n;
	errno = saved;
}

void loop_stop(struct loop *l)
{
	atomic_store_explicit(&l->stop, true, memory_order_release);
	/* Wakes an epoll_wait() on another thread or one this interrupted. */
	loop_wake(l);
}
