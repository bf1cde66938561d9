/* SPDX-License-Identifier: Apache-2.0 */
/* A bump allocator (contract in arena.h): blocks of ARENA_BLK bytes (or
 * one block for a larger request), zeroed by calloc, in a list. */
#include "model/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLK 16384u

void *arena_alloc(struct arena *a, size_t n)
{
	struct arena_blk *b = a->head;
	size_t al = sizeof(max_align_t);

	if (n > SIZE_MAX / 2) {
		a->nomem = true;
		return NULL;
	}
	n = (n + al - 1) / al * al;
	if (!n)
		n = al;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLK ? n : ARENA_BLK;

		b = calloc(1, sizeof(*b) + cap);
		if (!b) {
			a->nomem = true;
			return NULL;
		}
		b->cap = cap;
		b->next = a->head;
		a->head = b;
	}
	void *p = (char *)b->data + b->used;

	b->used += n;
	return p; /* zeroed: blocks come from calloc and are never reused */
}

void *arena_calloc(struct arena *a, size_t n, size_t sz)
{
	if (sz && n > SIZE_MAX / sz) {
		a->nomem = true;
		return NULL;
	}
	return arena_alloc(a, n * sz);
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);

	if (p)
		memcpy(p, s, len);
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void arena_free(struct arena *a)
{
	struct arena_blk *b = a->head;

	while (b) {
		struct arena_blk *n = b->next;

		free(b);
		b = n;
	}
	a->head = NULL;
}
