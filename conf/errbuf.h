/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pieces of the error messages that functions write into a caller's
 * buffer (the `char *err, size_t errlen` convention used across warren):
 * formatting into that buffer, and naming a JSON value's type the way the
 * configuration messages do. Nothing here allocates or fails.
 */
#ifndef WARREN_ERRBUF_H
#define WARREN_ERRBUF_H

#include <jansson.h>
#include <stddef.h>

/* printf into err; a NULL err or a zero errlen is allowed (does nothing),
 * a long message is truncated. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For a clean-up that goes on after an error and reports the first one:
 * when ret < 0 and *first is still 0, *first = ret and msg goes into err. */
void errbuf_keep_first(int *first, int ret, char *err, size_t errlen, const char *msg);

/* "a mapping", "a list", "a string", "an integer", "a number", "a boolean",
 * "null": for "expected X, got <this>" messages about YAML/JSON input. */
const char *errbuf_json_type(const json_t *v);

#endif
