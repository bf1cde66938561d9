/* SPDX-License-Identifier: Apache-2.0 */
/* The stream's byte ring (contract: hbone_ring.h). */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/hbone_ring.h"

/* This thread's drained buffers (only where hbone_ring_cache_enable()
 * ran): a bulk stream drains and refills its ring many times per MiB, and
 * from 128 KiB up every malloc() is a fresh mmap() whose pages fault in
 * again (the tunnel fixes the mmap threshold, main.c). */
#define RING_CACHE_N HBONE_RING_CACHE
static _Thread_local bool ring_cache_on;
static _Thread_local unsigned ring_cache_n;
static _Thread_local struct {
	uint8_t *buf;
	size_t cap;
} ring_cache[RING_CACHE_N];

void hbone_ring_cache_enable(void)
{
	ring_cache_on = true;
}

void hbone_ring_cache_flush(void)
{
	while (ring_cache_n)
		free(ring_cache[--ring_cache_n].buf);
}

/* Into the cache (the smallest one makes room for a bigger one), or freed. */
static void ring_cache_put(uint8_t *buf, size_t cap)
{
	unsigned i, min = 0;

	if (!buf)
		return;
	if (!ring_cache_on) {
		free(buf);
		return;
	}
	if (ring_cache_n < RING_CACHE_N) {
		ring_cache[ring_cache_n].buf = buf;
		ring_cache[ring_cache_n++].cap = cap;
		return;
	}
	for (i = 1; i < RING_CACHE_N; i++)
		if (ring_cache[i].cap < ring_cache[min].cap)
			min = i;
	if (ring_cache[min].cap >= cap) {
		free(buf);
		return;
	}
	free(ring_cache[min].buf);
	ring_cache[min].buf = buf;
	ring_cache[min].cap = cap;
}

/* The biggest cached buffer that fits max, or NULL. */
static uint8_t *ring_cache_take(size_t max, size_t *cap)
{
	unsigned i, best = RING_CACHE_N;
	uint8_t *buf;

	for (i = 0; i < ring_cache_n; i++)
		if (ring_cache[i].cap <= max &&
		    (best == RING_CACHE_N || ring_cache[i].cap > ring_cache[best].cap))
			best = i;
	if (best == RING_CACHE_N)
		return NULL;
	buf = ring_cache[best].buf;
	*cap = ring_cache[best].cap;
	ring_cache[best] = ring_cache[--ring_cache_n];
	return buf;
}

void hbone_ring_free(struct hbone_ring *r)
{
	ring_cache_put(r->buf, r->cap);
	r->buf = NULL;
	r->cap = r->head = r->len = 0;
}

size_t hbone_ring_space(const struct hbone_ring *r)
{
	return r->max - r->len;
}

/* Used bytes as up to two iovecs. */
int hbone_ring_data_iov(struct hbone_ring *r, struct iovec iov[2])
{
	size_t first = r->cap - r->head < r->len ? r->cap - r->head : r->len;

	iov[0].iov_base = r->buf + r->head;
	iov[0].iov_len = first;
	iov[1].iov_base = r->buf;
	iov[1].iov_len = r->len - first;
	return iov[1].iov_len ? 2 : 1;
}

/* Room for n more bytes (n <= hbone_ring_space): grows (doubling, linearised
 * copy) when the allocation is too small. 0 or -ENOMEM. */
int hbone_ring_reserve(struct hbone_ring *r, size_t n)
{
	size_t cap = r->cap ? r->cap : HBONE_RING_MIN;
	struct iovec iov[2];
	uint8_t *nb;

	assert(n <= hbone_ring_space(r));
	if (!r->buf && (r->buf = ring_cache_take(r->max, &r->cap))) {
		r->head = 0;
		cap = r->cap;
		if (cap >= HBONE_RING_BIG)
			r->grew_big = true;
	}
	if (r->buf && r->len + n <= r->cap)
		return 0;
	while (cap < r->len + n)
		cap *= 2;
	if (cap > r->max)
		cap = r->max;
	nb = malloc(cap);
	if (!nb)
		return -ENOMEM;
	if (r->len) {
		hbone_ring_data_iov(r, iov);
		memcpy(nb, iov[0].iov_base, iov[0].iov_len);
		memcpy(nb + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	}
	ring_cache_put(r->buf, r->cap);
	r->buf = nb;
	r->cap = cap;
	r->head = 0;
	if (cap >= HBONE_RING_BIG)
		r->grew_big = true;
	return 0;
}

void hbone_ring_drop(struct hbone_ring *r, size_t n)
{
	assert(n <= r->len);
	r->head = (r->head + n) % r->cap;
	r->len -= n;
	if (!r->len)
		hbone_ring_free(r); /* an idle stream holds no buffer (the thread's cache may) */
}

/* Appends n bytes; hbone_ring_reserve(r, n) succeeded before. */
void hbone_ring_put(struct hbone_ring *r, const uint8_t *p, size_t n)
{
	size_t tail = (r->head + r->len) % r->cap;
	size_t a = r->cap - tail < n ? r->cap - tail : n;

	assert(r->len + n <= r->cap);
	memcpy(r->buf + tail, p, a);
	memcpy(r->buf, p + a, n - a);
	r->len += n;
}
