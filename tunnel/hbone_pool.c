/* SPDX-License-Identifier: Apache-2.0 */
/* The client connection pool and its dial backoff (contract: hbone.h, pool part;
 * the hooks connections call: hbone_pool.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "conf/objcheck.h"
#include "tunnel/hbone_conn.h"
#include "tunnel/hbone_pool.h"
#include "tunnel/hbone_stream.h"
#include "tunnel/hbone_wire.h"

/* A destination whose last dials failed (hbone.h: dial backoff). */
struct pool_backoff {
	struct pool_backoff *next;
	char dst[64];           /* "10.0.0.2:15008" */
	unsigned failures;      /* in a row */
	uint64_t until_ms;      /* no dial before */
	char last[160];         /* why the last dial failed */
};

struct hbone_pool {
	unsigned magic;
	struct loop *l;
	struct hbone_opts o;
	struct hbone_conn *conns;
	struct pool_backoff *backoff;
};


static struct pool_backoff *pool_backoff_find(struct hbone_pool *p, const char *dst)
{
	for (struct pool_backoff *b = p->backoff; b; b = b->next)
		if (!strcmp(b->dst, dst))
			return b;
	return NULL;
}

/* A pooled dial to dst ended: opened (why NULL) forgets the destination's
 * failures; failed waits HBONE_BACKOFF_MIN_MS, doubled per failure in a
 * row up to HBONE_BACKOFF_MAX_MS, before the next dial. */
static void pool_dial_result(struct hbone_pool *p, const char *dst, const char *why)
{
	struct pool_backoff *b = pool_backoff_find(p, dst), **pp;
	uint64_t wait = HBONE_BACKOFF_MIN_MS;

	if (!why) {
		for (pp = &p->backoff; b && *pp; pp = &(*pp)->next)
			if (*pp == b) {
				*pp = b->next;
				free(b);
				break;
			}
		return;
	}
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return; /* no backoff then: each connection dials */
		snprintf(b->dst, sizeof(b->dst), "%s", dst);
		b->next = p->backoff;
		p->backoff = b;
	}
	if (b->failures < 32)
		b->failures++;
	for (unsigned i = 1; i < b->failures && wait < HBONE_BACKOFF_MAX_MS; i++)
		wait *= 2;
	if (wait > HBONE_BACKOFF_MAX_MS)
		wait = HBONE_BACKOFF_MAX_MS;
	b->until_ms = loop_now_ms() + wait;
	snprintf(b->last, sizeof(b->last), "%s", why);
}

void hbone_pool_conn_opened(struct hbone_conn *c)
{
	pool_dial_result(c->pool, c->pool_dst, NULL);
}

void hbone_pool_conn_gone(struct hbone_conn *c)
{
	if (!c->opened)
		pool_dial_result(c->pool, c->pool_dst, c->reason);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->pool->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

int hbone_pool_new(struct loop *l, const struct hbone_opts *opts, struct hbone_pool **out)
{
	struct hbone_pool *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->magic = HBONE_POOL_MAGIC;
	p->l = l;
	if (opts)
		p->o = *opts;
	else
		hbone_opts_default(&p->o, false);
	*out = p;
	return 0;
}

void hbone_pool_free(struct hbone_pool *p)
{
	if (!p)
		return;
	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	while (p->backoff) {
		struct pool_backoff *b = p->backoff;

		p->backoff = b->next;
		free(b);
	}
	while (p->conns) {
		struct hbone_conn *c = p->conns;

		/* Detach first: a busy connection is freed later, by its
		 * own callback, and must not touch the pool then. */
		p->conns = c->next;
		if (p->conns)
			p->conns->prev = NULL;
		c->pool = NULL;
		c->prev = c->next = NULL;
		hbone_conn_abort(c, "pool freed");
	}
	p->magic = 0;
	free(p);
}

static char *pool_key(const struct hbone_pool_target *t)
{
	char dst[64];
	size_t len;
	char *k;

	if (hbone_addr_port_str(t->dst, dst, sizeof(dst)))
		return NULL;
	len = strlen(t->src_id) + strlen(dst) + 3;
	for (size_t i = 0; i < t->n_expect; i++)
		len += strlen(t->expect[i]) + 1;
	k = malloc(len);
	if (!k)
		return NULL;
	len = (size_t)sprintf(k, "%s|%s|", t->src_id, dst);
	for (size_t i = 0; i < t->n_expect; i++)
		len += (size_t)sprintf(k + len, "%s%s", i ? "," : "", t->expect[i]);
	return k;
}

static bool pool_conn_has_slot(const struct hbone_conn *c, uint32_t max)
{
	uint32_t remote;

	if (c->dead || c->state == HBONE_CLOSING || c->draining)
		return false;
	remote = nghttp2_session_get_remote_settings(c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	if (remote < max)
		max = remote;
	return c->live < max;
}

int hbone_pool_open(struct hbone_pool *p, const struct hbone_pool_target *t,
		    const struct hbone_connect_req *req, int app_fd, hbone_stream_done_cb done_cb,
		    void *ctx, struct hbone_stream **out)
{
	struct hbone_conn *c;
	char *key = NULL;
	int fd, ret;

	if (out)
		*out = NULL;
	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	if (!t || !t->src_id || !t->ctx || !t->dst || !t->mksock || !t->n_expect ||
	    (t->dst->sa_family != AF_INET && t->dst->sa_family != AF_INET6)) {
		ret = -EINVAL;
		goto fail;
	}
	key = pool_key(t);
	if (!key) {
		ret = -ENOMEM;
		goto fail;
	}
	for (c = p->conns; c; c = c->next)
		if (!strcmp(c->pool_key, key) && pool_conn_has_slot(c, p->o.max_streams))
			break;
	if (!c) {
		char dst[64];
		struct pool_backoff *b;

		if (hbone_addr_port_str(t->dst, dst, sizeof(dst))) {
			ret = -EINVAL;
			goto fail;
		}
		b = pool_backoff_find(p, dst);
		if (b && loop_now_ms() < b->until_ms) {
			ret = -ECONNREFUSED; /* no dial: hbone_pool_backoff() says why */
			goto fail;
		}
		fd = t->mksock(t->mksock_ctx, t->dst, t->dstlen);
		if (fd < 0) {
			ret = fd;
			goto fail;
		}
		ret = hbone_client_connect(p->l, t->ctx, fd, t->dst, t->dstlen, t->expect,
					   t->n_expect, &p->o, NULL, NULL, &c);
		if (ret) {
			pool_dial_result(p, dst, strerror(-ret));
			goto fail;
		}
		snprintf(c->pool_dst, sizeof(c->pool_dst), "%s", dst);
		c->pool = p;
		c->pool_key = key;
		key = NULL;
		c->next = p->conns;
		if (p->conns)
			p->conns->prev = c;
		p->conns = c;
	}
	free(key);
	return hbone_stream_open(c, req, app_fd, done_cb, ctx, out);
fail:
	free(key);
	if (app_fd >= 0)
		close(app_fd);
	return ret;
}

int hbone_pool_backoff(struct hbone_pool *p, const struct sockaddr *dst, char *why, size_t len)
{
	struct pool_backoff *b;
	char d[64];
	uint64_t now = loop_now_ms();

	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	if (hbone_addr_port_str(dst, d, sizeof(d)) || !(b = pool_backoff_find(p, d)) || now >= b->until_ms)
		return 0;
	snprintf(why, len, "retry in %llu ms after %u failed dial%s to %s; the last: %s",
		 (unsigned long long)(b->until_ms - now), b->failures, b->failures == 1 ? "" : "s",
		 d, b->last);
	return 1;
}

void hbone_pool_drain(struct hbone_pool *p, const char *src_id)
{
	size_t n = src_id ? strlen(src_id) : 0;

	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	for (struct hbone_conn *c = p->conns; c; c = c->next) {
		if (c->draining || (src_id && (strncmp(c->pool_key, src_id, n) || c->pool_key[n] != '|')))
			continue;
		c->draining = true;
		if (!c->live)
			hbone_conn_arm_idle(c);
	}
}

size_t hbone_pool_stats(const struct hbone_pool *p, struct hbone_pool_conn_info *out, size_t max)
{
	size_t n = 0;

	CHECK_OBJ(p, HBONE_POOL_MAGIC);
	for (const struct hbone_conn *c = p->conns; c; c = c->next, n++) {
		const char *k = c->pool_key, *bar1, *bar2;

		if (n >= max)
			continue;
		bar1 = strchr(k, '|');
		bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].src_id, sizeof(out[n].src_id), "%.*s",
			 bar1 ? (int)(bar1 - k) : 0, k);
		if (bar2)
			snprintf(out[n].dst, sizeof(out[n].dst), "%.*s", (int)(bar2 - bar1 - 1),
				 bar1 + 1);
		hbone_conn_get_info(c, &out[n].conn);
	}
	return n;
}
