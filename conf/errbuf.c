/* SPDX-License-Identifier: Apache-2.0 */
/* Error-buffer helpers (contract in errbuf.h). */
#include "conf/errbuf.h"

#include <stdarg.h>
#include <stdio.h>

void errbuf_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void errbuf_keep_first(int *first, int ret, char *err, size_t errlen, const char *msg)
{
	if (ret >= 0 || *first)
		return;
	*first = ret;
	errbuf_set(err, errlen, "%s", msg);
}

const char *errbuf_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "a mapping";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}
