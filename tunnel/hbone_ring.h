/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The byte ring of an HBONE stream's peer -> socket direction.
 *
 * A byte ring that grows on demand up to max (the stream window): most
 * bytes never enter it (they are written to the socket straight from the
 * decrypted TLS buffer), so it only holds what the app did not take yet,
 * and a stream that moves 1 KiB never allocates 4 MiB. Released when it
 * drains: into the thread's cache of drained buffers where one is enabled,
 * else freed. A bulk stream drains and refills many times per MiB, and a
 * fresh buffer of 128 KiB and more is a fresh mmap() whose pages fault in
 * again; reserving takes the biggest cached buffer that fits first.
 *
 * The cache: per thread, at most HBONE_RING_CACHE buffers (the biggest
 * kept), so an idle stream holds no buffer and a worker at most
 * HBONE_RING_CACHE * its streams' max. Only threads that called
 * hbone_ring_cache_enable() cache (the workers: a thread that frees rings
 * now and then, as the main thread does at a reconfiguration, would keep
 * its buffers forever); hbone_ring_cache_flush() frees this thread's
 * (hbone_trim_now() after a burst, and a worker when its loop ends).
 *
 * Not thread-safe: a ring belongs to its stream, on its loop's thread.
 * hbone_ring_reserve() allocates (0 or -ENOMEM); hbone_ring_put() needs
 * the room reserved; hbone_ring_free() releases the buffer (the ring is
 * empty and reusable after it).
 */
#ifndef WARREN_HBONE_RING_H
#define WARREN_HBONE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct hbone_ring {
	uint8_t *buf;
	size_t cap, head, len; /* invariant: len <= cap, head < cap (when cap) */
	size_t max;            /* cap never exceeds it */
	bool grew_big;         /* reached HBONE_RING_BIG once: worth a heap trim when done */
};

#define HBONE_RING_MIN (16u * 1024u)
#define HBONE_RING_BIG (256u * 1024u)
#define HBONE_RING_CACHE 2u

/* This thread caches drained buffers from now on. */
void hbone_ring_cache_enable(void);
/* Frees this thread's cached buffers. */
void hbone_ring_cache_flush(void);

void hbone_ring_free(struct hbone_ring *r);
/* Bytes that may still be put (up to max). */
size_t hbone_ring_space(const struct hbone_ring *r);
/* The buffered bytes as one or two iovecs; returns their count. */
int hbone_ring_data_iov(struct hbone_ring *r, struct iovec iov[2]);
/* Room for n more bytes, growing the buffer: 0, -ENOMEM. */
int hbone_ring_reserve(struct hbone_ring *r, size_t n);
/* Forgets the first n buffered bytes; releases the buffer when empty. */
void hbone_ring_drop(struct hbone_ring *r, size_t n);
void hbone_ring_put(struct hbone_ring *r, const uint8_t *p, size_t n);

#endif
