/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading Kubernetes objects from text: JSON, or YAML with several
 * documents ("---"), through libyaml. YAML scalars are typed the way
 * Kubernetes reads them: quoted -> string; plain true/false -> bool,
 * null/~/empty -> null, integers and floats -> numbers, else string.
 * A top-level "kind: List" (or any object with an "items" array and a kind
 * ending in "List") is flattened into its items.
 *
 * Ownership: *out is a new JSON array of objects owned by the caller.
 * Returns 0, or -EINVAL with err naming the file (when given), line and
 * problem.
 */
#ifndef WARREN_KOBJ_H
#define WARREN_KOBJ_H

#include <jansson.h>
#include <stddef.h>

int kobj_load_text(const char *text, size_t len, const char *origin, json_t **out,
		   char *err, size_t errlen);
/* Reads a file and calls kobj_load_text. */
int kobj_load_file(const char *path, json_t **out, char *err, size_t errlen);

#endif
