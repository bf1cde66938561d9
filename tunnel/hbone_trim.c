/* SPDX-License-Identifier: Apache-2.0 */
/* Memory trimming after bursts, the per-thread read buffer (contract: hbone_trim.h). */
#include <assert.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "tunnel/hbone_ring.h"
#include "tunnel/hbone_trim.h"

#define TRIM_MIN_PEAK 32u
#define TRIM_MIN_CONNS 4u

struct trim_burst {
	atomic_uint now, peak;
};
static struct trim_burst trim_streams, trim_conns;

static void trim_burst_inc(struct trim_burst *b)
{
	unsigned n = atomic_fetch_add(&b->now, 1) + 1;
	unsigned peak = atomic_load(&b->peak);

	while (n > peak && !atomic_compare_exchange_weak(&b->peak, &peak, n))
		;
}

/* One fewer; true when that ends a burst of at least min (the count fell
 * to a quarter of its peak, which restarts from here). */
static bool trim_burst_dec(struct trim_burst *b, unsigned min)
{
	unsigned n = atomic_fetch_sub(&b->now, 1) - 1;
	unsigned peak = atomic_load(&b->peak);

	assert(n != UINT_MAX);
	return peak >= min && n <= peak / 4 && atomic_compare_exchange_strong(&b->peak, &peak, n);
}

/* Mapped on first use and page-aligned so a trim can hand its pages back
 * (trim_read_high: the most it held since). Not a _Thread_local array:
 * glibc zeroes a thread's TLS block when the thread starts, which would
 * make all of it resident in every thread. */
static _Thread_local uint8_t *trim_read_buf;
static _Thread_local bool trim_read_busy;
static _Thread_local size_t trim_read_high;

static void trim_heap(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

void hbone_trim_stream_begin(void)
{
	trim_burst_inc(&trim_streams);
}

bool hbone_trim_stream_end(void)
{
	return trim_burst_dec(&trim_streams, TRIM_MIN_PEAK);
}

void hbone_trim_stream_forget(void)
{
	atomic_fetch_sub(&trim_streams.now, 1);
}

void hbone_trim_conn_begin(void)
{
	trim_burst_inc(&trim_conns);
}

void hbone_trim_conn_end(void)
{
	if (trim_burst_dec(&trim_conns, TRIM_MIN_CONNS))
		trim_heap();
}

void hbone_trim_now(void)
{
	hbone_ring_cache_flush();
	trim_heap();
	if (trim_read_buf && !trim_read_busy && trim_read_high > HBONE_TLS_RECORD) {
		(void)madvise(trim_read_buf, HBONE_READ_BUF, MADV_DONTNEED);
		trim_read_high = 0;
	}
}

uint8_t *hbone_trim_read_buf_take(size_t *cap)
{
	if (trim_read_busy)
		return NULL;
	if (!trim_read_buf) {
		void *p = mmap(NULL, HBONE_READ_BUF, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			return NULL;
		trim_read_buf = p;
	}
	trim_read_busy = true;
	*cap = HBONE_READ_BUF;
	return trim_read_buf;
}

void hbone_trim_read_buf_release(size_t high)
{
	trim_read_busy = false;
	if (high > trim_read_high)
		trim_read_high = high;
}

bool hbone_trim_read_buf_big(void)
{
	return trim_read_high > HBONE_TLS_RECORD;
}
