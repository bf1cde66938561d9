/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the model never reads, cut from the API server's JSON text before
 * jansson parses it (conf/kube_prune.c). Parsing, allocating and freeing the
 * fields nobody reads is most of a relist's CPU: of a pod, everything but
 * what kube_obj_compact() keeps; of any other object, metadata.managedFields.
 *
 * The text is checked as it is read: what is cut must be JSON as jansson
 * reads it (structure, strings and their escapes, UTF-8, numbers and their
 * range, nesting depth), or the whole text is refused, so that a malformed
 * answer fails as it did when jansson read all of it. Not checked in what
 * is cut: duplicate keys. What is kept is copied as sent, for jansson to
 * judge. Pure, no allocation; any thread.
 */
#ifndef WARREN_KUBE_PRUNE_H
#define WARREN_KUBE_PRUNE_H

#include <stdbool.h>
#include <stddef.h>

enum kube_prune_what {
	KUBE_PRUNE_LIST,  /* a list answer: {"items": [object, ...], ...} */
	KUBE_PRUNE_EVENT, /* one watch event: {"type": ..., "object": object} */
};

/* Cuts, in place, from every object of s[0..n) (pod: Pods, else any kind)
 * what the model never reads, and sets *len to the new length. 0, or -1
 * when s is no JSON, *bad then the offset of the first byte found wrong
 * (s is then garbage, to be dropped). Reading the result gives the same
 * values as reading s, less the members cut: for a pod, the
 * members kube_obj_compact() keeps are all there, with also the top-level
 * "code", "message", "reason" and "details" of an ERROR event's Status. */
int kube_json_prune(char *s, size_t n, enum kube_prune_what what, bool pod, size_t *len,
		    size_t *bad);

#endif
