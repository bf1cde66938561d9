/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's upstream streams (contract in waypoint/upstream.h). */
#include "waypoint/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conf/log.h"
#include "conf/objcheck.h"
#include "waypoint/stats.h"

#define WPU_MAGIC 0x77707570u /* "wpup" */

static void wpu_unpark(struct wp_up *u)
{
	if (!u->pprev)
		return;
	*u->pprev = u->next;
	if (u->next)
		u->next->pprev = u->pprev;
	u->next = NULL;
	u->pprev = NULL;
	u->ups->n_idle--;
	if (u->timer)
		loop_timer_cancel(u->ups->loop, u->timer);
	u->timer = NULL;
}

void wp_up_release(struct wp_up *u)
{
	CHECK_OBJ(u, WPU_MAGIC);
	wpu_unpark(u);
	if (u->fd >= 0) {
		loop_del(u->ups->loop, u->fd);
		close(u->fd);
		u->fd = -1;
	}
	u->released = true;
	if (u->done) {
		u->magic = 0;
		free(u);
	}
}

static void wpu_done(void *ctx, struct hbone_stream *s, const struct hbone_stream_stats *st)
{
	struct wp_up *u = ctx;

	(void)s;
	CHECK_OBJ(u, WPU_MAGIC);
	if (!st->ok)
		log_debug("upstream HBONE stream %s ended: %s (status %d)", u->key, st->reason, st->status);
	u->done = true;
	u->status = st->status;
	if (u->released) {
		u->magic = 0;
		free(u);
	}
}

bool wp_up_connect_failed(const struct wp_up *u)
{
	return u->done && (u->status < 200 || u->status > 299);
}

/* A parked stream's peer sent something or closed. */
static void wpu_idle_io(struct loop *l, int fd, uint32_t events, void *ctx)
{
	(void)l;
	(void)fd;
	(void)events;
	wp_up_release(ctx);
}

static void wpu_idle_expire(struct loop *l, void *ctx)
{
	struct wp_up *u = ctx;

	(void)l;
	u->timer = NULL;
	wp_up_release(u);
}

bool wp_up_park(struct wp_up *u)
{
	struct wp_ups *w = u->ups;

	CHECK_OBJ(u, WPU_MAGIC);
	if (u->done || w->n_idle >= WP_IDLE_MAX || loop_set(w->loop, u->fd, EPOLLIN, wpu_idle_io, u) < 0 ||
	    !(u->timer = loop_timer_add(w->loop, WP_IDLE_MS, wpu_idle_expire, u))) {
		wp_up_release(u);
		return false;
	}
	u->next = w->idle;
	if (u->next)
		u->next->pprev = &u->next;
	u->pprev = &w->idle;
	w->idle = u;
	w->n_idle++;
	return true;
}

/* A parked stream to key that is still quiet, unparked, or NULL. */
static struct wp_up *wpu_take(struct wp_ups *w, const char *key)
{
	struct wp_up *u, *next;
	char b;

	for (u = w->idle; u; u = next) {
		next = u->next;
		if (strcmp(u->key, key))
			continue;
		if (u->done || recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) != -1 ||
		    (errno != EAGAIN && errno != EWOULDBLOCK)) {
			wp_up_release(u); /* closed or talking out of turn: not reusable */
			continue;
		}
		wpu_unpark(u);
		return u;
	}
	return NULL;
}

void wp_up_drain(struct wp_ups *w)
{
	while (w->idle)
		wp_up_release(w->idle);
}

static int wpu_mksock(void *ctx, const struct sockaddr *dst, socklen_t dstlen)
{
	int fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	(void)ctx;
	(void)dstlen;
	if (fd < 0)
		return -errno;
	/* as on the 15008 listener: a request's TLS records leave at once,
	 * not after the peer's delayed ACK of the one before */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

struct wp_up *wp_up_open(struct wp_ups *w, const struct wp_up_dest *d, loop_fd_cb cb, void *ctx, bool *reused,
			 int *err, char *why, size_t whylen)
{
	char key[WPU_KEY], fwd[200];
	const char *expv[1] = { d->expect };
	struct wp_up *u;
	int sp[2], ret;

	snprintf(key, sizeof(key), "%s %s", d->authority, d->expect);
	if (!d->fresh && (u = wpu_take(w, key))) {
		if (loop_set(w->loop, u->fd, EPOLLIN, cb, ctx) < 0) {
			wp_up_release(u);
			snprintf(why, whylen, "cannot watch the upstream socket");
			*err = -ENOMEM;
			return NULL;
		}
		*reused = true;
		w->n_reused++;
		if (w->stats)
			wp_stats_upstream(w->stats, true);
		return u;
	}
	*reused = false;
	if (hbone_format_forwarded(fwd, sizeof(fwd), d->client, NULL) < 0)
		fwd[0] = '\0';
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(why, whylen, "out of memory");
		*err = -ENOMEM;
		return NULL;
	}
	u->magic = WPU_MAGIC;
	u->ups = w;
	u->fd = -1;
	snprintf(u->key, sizeof(u->key), "%s", key);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0) {
		*err = -errno;
		free(u);
		snprintf(why, whylen, "socketpair: %s", strerror(-*err));
		return NULL;
	}
	{
		struct hbone_pool_target tg = {
			.src_id = w->id, .ctx = w->ctx, .dst = d->hbone, .dstlen = d->hbone_len,
			.expect = expv, .n_expect = 1, .mksock = wpu_mksock,
		};
		struct hbone_connect_req req = { .authority = d->authority, .forwarded = fwd[0] ? fwd : NULL };

		ret = hbone_pool_open(w->pool, &tg, &req, sp[0], wpu_done, u, NULL);
	}
	if (ret < 0) {
		close(sp[1]);
		free(u); /* a failed open runs no done callback */
		snprintf(why, whylen, "cannot open an HBONE stream to %s: %s", d->authority, strerror(-ret));
		*err = ret;
		return NULL;
	}
	u->fd = sp[1];
	w->n_new++;
	if (w->stats)
		wp_stats_upstream(w->stats, false);
	ret = loop_add(w->loop, u->fd, EPOLLIN, cb, ctx);
	if (ret < 0) {
		wp_up_release(u);
		snprintf(why, whylen, "cannot watch the upstream socket");
		*err = ret;
		return NULL;
	}
	return u;
}
