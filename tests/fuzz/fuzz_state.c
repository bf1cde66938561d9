/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the pod state records (tunnel/state_record.c): the
 * input is the content of one <stateDir>/pods/<uid>.json as adoption reads
 * it at start (a full disk, a crash or a hand edit can leave anything
 * there). state_record_parse() must either refuse it with -EBADMSG, a
 * reason and nothing filled, or fill every field with a safe uid; an
 * accepted record written back the way state_write() writes it parses to
 * the same values (round trip). Aborts on a broken invariant; memory
 * errors are caught by ASan/UBSan.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/handoff.h"
#include "tunnel/state_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_same_str(const char *a, const char *b)
{
	if (!a || !b || strcmp(a, b))
		abort();
}

/* The record as state_write() puts it on disk (pod_to_json's fields). */
static char *fz_rewrite(const struct state_record *r)
{
	json_t *o;
	char *s = NULL;

	o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:o}", "uid", r->uid, "containerId",
		      r->container_id, "ifname", r->ifname, "namespace", r->namespace, "name",
		      r->name, "serviceAccount", r->service_account, "netns", r->netns, "netnsDev",
		      (json_int_t)r->netns_dev, "netnsIno", (json_int_t)r->netns_ino, "ips",
		      r->ips ? json_incref(r->ips) : json_array());
	if (o && handoff_mode_put(o, &r->mode) == 0)
		s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state_record rec, again;
	char err[512], *text;
	int ret;

	err[0] = '\0';
	ret = state_record_parse(data, size, &rec, err, sizeof(err));
	if (ret < 0) {
		if (ret != -EBADMSG || !err[0] || !memchr(err, '\0', sizeof(err)) || rec.json ||
		    rec.uid || rec.ips)
			abort();
		return 0;
	}
	if (ret != 0 || !json_is_object(rec.json) || !state_uid_valid(rec.uid) ||
	    !rec.container_id || !rec.ifname || !rec.namespace || !rec.name ||
	    !rec.service_account || !rec.netns || (rec.ips && !json_is_array(rec.ips)))
		abort();
	for (size_t i = 0; i < json_array_size(rec.ips); i++)
		if (!json_is_string(json_array_get(rec.ips, i)))
			abort();
	text = fz_rewrite(&rec);
	if (!text)
		abort(); /* every accepted record can be written back */
	if (strlen(text) > STATE_RECORD_MAX) /* indentation grew it past the bound */
		goto done;
	if (state_record_parse(text, strlen(text), &again, err, sizeof(err)) != 0)
		abort();
	fz_same_str(rec.uid, again.uid);
	fz_same_str(rec.container_id, again.container_id);
	fz_same_str(rec.ifname, again.ifname);
	fz_same_str(rec.namespace, again.namespace);
	fz_same_str(rec.name, again.name);
	fz_same_str(rec.service_account, again.service_account);
	fz_same_str(rec.netns, again.netns);
	if (rec.netns_dev != again.netns_dev || rec.netns_ino != again.netns_ino ||
	    !inpod_mode_equal(&rec.mode, &again.mode) ||
	    json_array_size(rec.ips) != json_array_size(again.ips))
		abort();
	for (size_t i = 0; i < json_array_size(rec.ips); i++)
		fz_same_str(json_string_value(json_array_get(rec.ips, i)),
			    json_string_value(json_array_get(again.ips, i)));
	state_record_clear(&again);
done:
	free(text);
	state_record_clear(&rec);
	return 0;
}
