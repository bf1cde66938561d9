/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: arbitrary bytes as a watch stream from the API server.
 * Every line goes through kube_event_parse; an object event is trimmed,
 * keyed and built into a model alone, as tunnel/kube_watch.c does with it.
 * Must never crash, leak or trip a sanitizer; errors are expected.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conf/kube.h"
#include "model/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char err[256], key[512];

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct kube_event ev;

		if (kube_event_parse(p, len, &ev, err, sizeof(err)) == 0) {
			if (ev.type != KEV_ERROR && ev.type != KEV_BOOKMARK) {
				json_t *one;
				struct mesh *m = NULL;

				kube_obj_trim(ev.object, "v1", "Pod");
				(void)kube_obj_key(ev.object, key, sizeof(key));
				(void)kube_obj_rv(ev.object);
				one = json_pack("[O]", ev.object);
				if (one && mesh_build(one, "fuzz", &m, err, sizeof(err)) == 0)
					mesh_free(m);
				json_decref(one);
			}
			json_decref(ev.object);
		}
		p += len + 1;
	}
	return 0;
}
