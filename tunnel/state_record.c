/* SPDX-License-Identifier: Apache-2.0 */
/* A pod's state record from bytes: the contract is in state_record.h. */
#include "tunnel/state_record.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/handoff.h"

bool state_uid_valid(const char *uid)
{
	size_t n = 0;

	if (!uid || !*uid || uid[0] == '.')
		return false;
	for (const char *c = uid; *c; c++, n++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return false;
	}
	return n <= 128;
}

__attribute__((format(printf, 3, 4)))
static int srec_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

void state_record_clear(struct state_record *rec)
{
	json_decref(rec->json);
	memset(rec, 0, sizeof(*rec));
}

int state_record_parse(const void *buf, size_t len, struct state_record *rec, char *err,
		       size_t errlen)
{
	struct {
		const char *key;
		const char **dst;
	} strs[] = {
		{ "uid", &rec->uid },
		{ "containerId", &rec->container_id },
		{ "ifname", &rec->ifname },
		{ "namespace", &rec->namespace },
		{ "name", &rec->name },
		{ "serviceAccount", &rec->service_account },
		{ "netns", &rec->netns },
	};
	struct {
		const char *key;
		uint64_t *dst;
	} ints[] = {
		{ "netnsDev", &rec->netns_dev },
		{ "netnsIno", &rec->netns_ino },
	};
	json_error_t jerr;
	char why[256];
	json_t *v;
	size_t i;
	int ret;

	memset(rec, 0, sizeof(*rec));
	if (len == 0) {
		ret = srec_fail(err, errlen, "unreadable record: empty");
		goto fail;
	}
	if (len > STATE_RECORD_MAX) {
		ret = srec_fail(err, errlen, "unreadable record: %zu bytes, more than %d", len,
				STATE_RECORD_MAX);
		goto fail;
	}
	rec->json = json_loadb(buf, len, 0, &jerr);
	if (!rec->json) {
		ret = srec_fail(err, errlen, "unreadable record: %s (line %d, column %d)", jerr.text,
				jerr.line, jerr.column);
		goto fail;
	}
	if (!json_is_object(rec->json)) {
		ret = srec_fail(err, errlen, "malformed record: not a JSON object");
		goto fail;
	}
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		v = json_object_get(rec->json, strs[i].key);
		if (!v) {
			ret = srec_fail(err, errlen, "malformed record: \"%s\" is missing", strs[i].key);
			goto fail;
		}
		if (!json_is_string(v)) {
			ret = srec_fail(err, errlen, "malformed record: \"%s\" must be a string",
					strs[i].key);
			goto fail;
		}
		*strs[i].dst = json_string_value(v);
	}
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		v = json_object_get(rec->json, ints[i].key);
		if (!v) {
			ret = srec_fail(err, errlen, "malformed record: \"%s\" is missing", ints[i].key);
			goto fail;
		}
		if (!json_is_integer(v)) {
			ret = srec_fail(err, errlen, "malformed record: \"%s\" must be an integer",
					ints[i].key);
			goto fail;
		}
		/* Written as the json_int_t cast of a uint64_t: cast back. */
		*ints[i].dst = (uint64_t)json_integer_value(v);
	}
	if (!state_uid_valid(rec->uid)) {
		ret = srec_fail(err, errlen, "malformed record: \"uid\" is not a valid pod uid");
		goto fail;
	}
	rec->ips = json_object_get(rec->json, "ips");
	if (rec->ips && !json_is_array(rec->ips)) {
		ret = srec_fail(err, errlen, "malformed record: \"ips\" must be an array of strings");
		goto fail;
	}
	json_array_foreach(rec->ips, i, v) {
		if (!json_is_string(v)) {
			ret = srec_fail(err, errlen, "malformed record: \"ips\" item %zu is not a string",
					i);
			goto fail;
		}
	}
	/* Records written before the mode existed have none: full capture. */
	if (handoff_mode_get(rec->json, &rec->mode, why, sizeof(why)) < 0) {
		ret = srec_fail(err, errlen, "malformed record: %s", why);
		goto fail;
	}
	return 0;
fail:
	state_record_clear(rec);
	return ret;
}
