/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE stream's byte ring (tunnel/hbone_ring.h): bytes come out in
 * order across a wrap and a growth, a drained ring holds no buffer, and a
 * thread with the cache enabled hands a drained buffer to the next ring
 * (bounded, biggest kept, flushed on demand).
 */
#include <stdint.h>
#include <string.h>

#include "tunnel/hbone_ring.h"
#include "t.h"

/* Puts n bytes of pattern seed (reserving first). */
static int ring_fill(struct hbone_ring *r, size_t n, uint8_t seed)
{
	uint8_t b[4096];

	while (n) {
		size_t k = n < sizeof(b) ? n : sizeof(b);

		for (size_t i = 0; i < k; i++)
			b[i] = (uint8_t)(seed + i);
		if (hbone_ring_reserve(r, k))
			return -1;
		hbone_ring_put(r, b, k);
		n -= k;
	}
	return 0;
}

/* The first n bytes equal the pattern of fill(n, seed). */
static int ring_check(struct hbone_ring *r, size_t n, uint8_t seed)
{
	struct iovec iov[2];
	size_t at = 0;
	int k = hbone_ring_data_iov(r, iov);

	for (int j = 0; j < k; j++)
		for (size_t i = 0; i < iov[j].iov_len && at < n; i++, at++)
			if (((uint8_t *)iov[j].iov_base)[i] != (uint8_t)(seed + at % 4096))
				return -1;
	return at == n ? 0 : -1;
}

static void t_order_and_free(void)
{
	struct hbone_ring r = { .max = HBONE_RING_BIG };

	T_ASSERT_INT(ring_fill(&r, 10000, 7), 0);
	hbone_ring_drop(&r, 6000);
	T_ASSERT_INT(ring_fill(&r, 12000, 9), 0); /* wraps in the 16 KiB buffer */
	T_ASSERT_INT(r.cap, HBONE_RING_MIN);
	T_ASSERT_INT(r.len, 16000);
	T_ASSERT_INT(ring_fill(&r, 100000, 3), 0); /* grows, linearised */
	T_ASSERT_INT(r.head, 0);
	hbone_ring_drop(&r, 16000);
	T_ASSERT_INT(ring_check(&r, 100000, 3), 0);
	T_ASSERT_INT(hbone_ring_space(&r), HBONE_RING_BIG - 100000);
	T_ASSERT_INT(r.len, 100000);
	hbone_ring_drop(&r, 100000);
	T_ASSERT(r.buf == NULL); /* no cache on this thread yet: freed */
	T_ASSERT_INT(r.cap, 0);
}

static void t_cache(void)
{
	struct hbone_ring a = { .max = HBONE_RING_BIG }, b = { .max = HBONE_RING_BIG };
	struct hbone_ring c = { .max = HBONE_RING_BIG }, small = { .max = HBONE_RING_MIN };
	uint8_t *big;

	hbone_ring_cache_enable();
	T_ASSERT_INT(ring_fill(&a, HBONE_RING_BIG, 1), 0);
	T_ASSERT_INT(a.cap, HBONE_RING_BIG);
	T_ASSERT(a.grew_big);
	hbone_ring_cache_flush(); /* the buffers it grew out of */
	big = a.buf;
	hbone_ring_drop(&a, HBONE_RING_BIG);
	T_ASSERT(a.buf == NULL); /* the drained ring holds nothing */
	/* the next data reuses the cached buffer, whole */
	T_ASSERT_INT(ring_fill(&b, 100, 5), 0);
	T_ASSERT(b.buf == big);
	T_ASSERT_INT(b.cap, HBONE_RING_BIG);
	T_ASSERT(b.grew_big);
	T_ASSERT_INT(ring_check(&b, 100, 5), 0);
	/* a ring whose max is smaller does not take it */
	T_ASSERT_INT(ring_fill(&small, 100, 5), 0);
	T_ASSERT(small.buf != big);
	T_ASSERT_INT(small.cap, HBONE_RING_MIN);
	/* bounded: three drained buffers, the two biggest kept */
	T_ASSERT_INT(ring_fill(&c, 40000, 2), 0);
	hbone_ring_free(&small);
	hbone_ring_free(&c);
	hbone_ring_free(&b);
	T_ASSERT_INT(ring_fill(&a, 1, 0), 0);
	T_ASSERT(a.buf == big);
	T_ASSERT_INT(ring_fill(&c, 1, 0), 0);
	T_ASSERT_INT(c.cap, 64u * 1024u);
	T_ASSERT_INT(ring_fill(&small, 1, 0), 0);
	T_ASSERT_INT(small.cap, HBONE_RING_MIN); /* fresh: the 16 KiB one was not kept */
	hbone_ring_free(&a);
	hbone_ring_free(&c);
	hbone_ring_free(&small);
	hbone_ring_cache_flush();
	T_ASSERT_INT(ring_fill(&a, 1, 0), 0);
	T_ASSERT_INT(a.cap, HBONE_RING_MIN); /* flushed: a fresh buffer */
	hbone_ring_free(&a);
	hbone_ring_cache_flush();
}

T_MAIN(T_CASE(t_order_and_free), T_CASE(t_cache))
