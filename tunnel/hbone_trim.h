/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process-wide memory trimming for the HBONE transport, and the per-thread
 * buffer decrypted input is gathered in.
 *
 * Heap after a burst. free() only returns the top of the heap: after a
 * bulk stream, or 1000 relayed connections ending, the freed pages in the
 * middle stay resident. So a second after such a burst ends (a connection
 * arms a timer of HBONE_TRIM_DELAY_MS and calls hbone_trim_now()),
 * malloc_trim() hands the free pages back. Bursts: a stream whose ring
 * reached HBONE_RING_BIG ended, or the process-wide stream count fell to a
 * quarter of a peak of at least 32 (hbone_trim_stream_end() says so).
 * Pooled connections outlive their streams' burst and pin pages of their
 * own, so the connection count falling to a quarter of a peak of at least
 * 4 trims too, at once (inside hbone_trim_conn_end()).
 *
 * Threads: the counts are atomic (streams and connections end on their
 * worker's thread or, closed by the control plane, on the main thread; a
 * lost race only moves a trim). The read buffer is per thread: a loop runs
 * on one thread, a connection lives on one loop, so a connection's trim
 * timer runs on the thread whose buffer it trims.
 */
#ifndef WARREN_HBONE_TRIM_H
#define WARREN_HBONE_TRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HBONE_TRIM_DELAY_MS 1000u
#define HBONE_READ_BUF (256u * 1024u) /* decrypted input handed to nghttp2 at once */
#define HBONE_TLS_RECORD 16384u       /* TLS plaintext record limit */

void hbone_trim_stream_begin(void);
/* A stream ended; true when that ends a burst worth a trim. */
bool hbone_trim_stream_end(void);
/* A stream that never opened is forgotten: not an end. */
void hbone_trim_stream_forget(void);
void hbone_trim_conn_begin(void);
/* A connection is gone: trims the heap now when that ends a burst. */
void hbone_trim_conn_end(void);

/* This thread's cached ring buffers (hbone_ring.h), malloc_trim, and this
 * thread's read buffer's pages back once bulk reads filled it (unless it is
 * in use). */
void hbone_trim_now(void);

/* This thread's read buffer (*cap = HBONE_READ_BUF), NULL when it is in use
 * (a nested read) or cannot be mapped. Give it back with the most bytes it
 * held meanwhile. */
uint8_t *hbone_trim_read_buf_take(size_t *cap);
void hbone_trim_read_buf_release(size_t high);
/* Bulk reads filled more than a record of it since the last trim. */
bool hbone_trim_read_buf_big(void);

#endif
