/* SPDX-License-Identifier: Apache-2.0 */
/* The stream's byte ring (contract: hbone_ring.h). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tunnel/hbone_ring.h"

void hbone_ring_free(struct hbone_ring *r)
{
	free(r->buf);
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
	free(r->buf);
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
		hbone_ring_free(r); /* an idle stream holds no buffer (re-allocated on next data) */
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
