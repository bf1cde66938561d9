/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as a watch stream from the API server.
 * Every line is pruned as a pod's event (kube_json_prune) and goes
 * through kube_event_parse; an object event is trimmed, keyed, compacted
 * and checked by the model builder alone, as tunnel/kube_watch.c does with
 * it. Must never crash, leak or trip a sanitizer; errors are expected.
 * Also checked (abort on a difference): the compact object
 * builds as the whole one does (both fail, or the same pods), and the
 * per-object check agrees with the builder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/kube.h"
#include "conf/kube_prune.h"
#include "model/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p), dlen, bad;
		struct kube_event ev;
		char *line = malloc(len + 1);

		if (!line)
			return 0;
		memcpy(line, p, len);
		if (kube_json_prune(line, len, KUBE_PRUNE_EVENT, true, &dlen, &bad) == 0 &&
		    kube_event_parse(line, dlen, &ev, err, sizeof(err)) == 0) {
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
