/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bump allocator for data that is built once and freed at once (the
 * policy engine's compiled sets). Memory comes zeroed and is never reused
 * or freed piecemeal; arena_free() releases every block. An allocation
 * that fails returns NULL and sets the sticky nomem flag, so a builder can
 * check once at the end. Not thread-safe: one builder at a time; what was
 * built may then be read from any thread.
 */
#ifndef WARREN_ARENA_H
#define WARREN_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct arena_blk {
	struct arena_blk *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct arena_blk *head;
	bool nomem; /* sticky: some allocation failed */
};

/* A zero-initialized struct arena is empty and ready. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_calloc(struct arena *a, size_t n, size_t sz);
/* A copy of s[0..len) with a terminating NUL. */
char *arena_strndup(struct arena *a, const char *s, size_t len);
char *arena_strdup(struct arena *a, const char *s);
/* Frees every block; the arena is empty (and reusable) after. */
void arena_free(struct arena *a);

#endif
