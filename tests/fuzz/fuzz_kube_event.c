/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as a watch stream from the API server.
 * Every line has its metadata.managedFields dropped from the text and goes
 * through kube_event_parse; an object event is trimmed, keyed, compacted
 * and checked by the model builder alone, as tunnel/kube_watch.c does with
 * it. Must never crash, leak or trip a sanitizer; errors are expected.
 * Also checked (abort on a difference): a line jansson reads reads the same
 * once managedFields is dropped, less those members; the compact object
 * builds as the whole one does (both fail, or the same pods), and the
 * per-object check agrees with the builder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/kube.h"
#include "model/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What trimming does to every object at depth 2 (an event's "object"). */
static void strip(json_t *root)
{
	const char *k;
	size_t i;
	json_t *v;

	if (json_is_object(root))
		json_object_foreach(root, k, v)
			json_object_del(json_object_get(v, "metadata"), "managedFields");
	json_array_foreach(root, i, v)
		json_object_del(json_object_get(v, "metadata"), "managedFields");
}

/* The text before and after kube_json_drop_managed read the same once
 * trimmed. */
static void check_drop(const char *p, size_t len, const char *dropped, size_t dlen)
{
	json_t *a = json_loadb(p, len, JSON_DECODE_ANY, NULL), *b;

	if (!a)
		return;
	b = json_loadb(dropped, dlen, JSON_DECODE_ANY, NULL);
	if (!b)
		abort();
	strip(a);
	strip(b);
	if (!json_equal(a, b))
		abort();
	json_decref(a);
	json_decref(b);
}

static void check_compact(json_t *obj)
{
	char e1[256] = "", e2[256] = "", e3[256] = "";
	struct mesh *m1 = NULL, *m2 = NULL;
	json_t *c = kube_obj_compact(obj), *x, *y;
	int r1, r2;

	if (!c)
		return;
	x = json_pack("[O]", obj);
	y = json_pack("[O]", c);
	if (x && y) {
		r1 = mesh_build(x, "fuzz", &m1, e1, sizeof(e1));
		r2 = mesh_build(y, "fuzz", &m2, e2, sizeof(e2));
		if (r1 != r2 || strcmp(e1, e2) || (!r1 && m1->n_pods != m2->n_pods))
			abort();
		if (mesh_check_object(c, "fuzz", e3, sizeof(e3)) != r2 || strcmp(e3, e2))
			abort();
	}
	mesh_free(m1);
	mesh_free(m2);
	json_decref(x);
	json_decref(y);
	json_decref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char err[256], key[512];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p), dlen;
		struct kube_event ev;
		char *line = malloc(len + 1);

		if (!line)
			return 0;
		memcpy(line, p, len);
		dlen = kube_json_drop_managed(line, len, 3);
		if (dlen > len)
			abort();
		check_drop(p, len, line, dlen);
		if (kube_event_parse(line, dlen, &ev, err, sizeof(err)) == 0) {
			if (ev.type != KEV_ERROR && ev.type != KEV_BOOKMARK) {
				kube_obj_trim(ev.object, "v1", "Pod");
				(void)kube_obj_key(ev.object, key, sizeof(key));
				(void)kube_obj_rv(ev.object);
				check_compact(ev.object);
			}
			json_decref(ev.object);
		}
		free(line);
		p += len + 1;
	}
	return 0;
}
