/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: kube_json_prune (conf/kube_prune.c) on arbitrary bytes.
 * The first byte picks what the text is (a list or a watch event) and of
 * which resource (pods, or any other); the rest is the text. Must never
 * crash, read or write out of bounds, or grow the text. Checked (abort on a
 * difference) against jansson reading the text whole:
 *  - jansson reads the text exactly when the pruned text is accepted and
 *    read (the cut parts are refused as jansson refuses them);
 *  - what is read after pruning is what is read before less the members
 *    cut: of other objects, the same less metadata.managedFields; of a pod,
 *    the same kube_obj_compact() (so the same model), the same members
 *    around it (a list's metadata, an event's type), and an ERROR event's
 *    code and message.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/kube.h"
#include "conf/kube_prune.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(json_t *x, json_t *y)
{
	return x ? json_equal(x, y) : !y;
}

static void strip_managed(json_t *o)
{
	json_object_del(json_object_get(o, "metadata"), "managedFields");
}

/* a and b (from before and after) are the same object as the tunnel keeps it */
static void same_object(json_t *a, json_t *b, bool pod)
{
	json_t *ca, *cb;

	if (!json_is_object(a) || !pod) {
		strip_managed(a);
		if (!same(a, b))
			abort();
		return;
	}
	if (!json_is_object(b))
		abort();
	json_object_set_new(a, "kind", json_string("Pod"));
	json_object_set_new(b, "kind", json_string("Pod"));
	ca = kube_obj_compact(a);
	cb = kube_obj_compact(b);
	if (!ca || !cb)
		abort();
	if (!json_equal(ca, cb) || !same(json_object_get(a, "code"), json_object_get(b, "code")) ||
	    !same(json_object_get(a, "message"), json_object_get(b, "message")))
		abort();
	json_decref(ca);
	json_decref(cb);
}

/* every member of a and b but key the same; key's values compared by
 * same_object (each element of an array) */
static void same_around(json_t *a, json_t *b, const char *key, bool pod)
{
	json_t *va = json_object_get(a, key), *vb = json_object_get(b, key), *e;
	size_t i;

	if (!json_is_object(a)) {
		if (!same(a, b))
			abort();
		return;
	}
	if (!va != !vb || json_object_size(a) != json_object_size(b))
		abort();
	json_incref(va);
	json_incref(vb);
	json_object_del(a, key);
	json_object_del(b, key);
	if (!json_equal(a, b))
		abort();
	if (json_is_array(va) && !strcmp(key, "items")) {
		if (!json_is_array(vb) || json_array_size(va) != json_array_size(vb))
			abort();
		json_array_foreach(va, i, e)
			same_object(e, json_array_get(vb, i), pod);
	} else if (va) {
		same_object(va, vb, pod);
	}
	json_decref(va);
	json_decref(vb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum kube_prune_what what;
	size_t len, bad = 0;
	json_t *a, *b;
	bool pod;
	char *s;
	int ret;

	if (size < 1)
		return 0;
	what = data[0] & 1 ? KUBE_PRUNE_EVENT : KUBE_PRUNE_LIST;
	pod = data[0] & 2;
	data++;
	size--;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	a = json_loadb((const char *)data, size, 0, NULL);
	ret = kube_json_prune(s, size, what, pod, &len, &bad);
	if (ret) {
		if (a || bad > size)
			abort();
	} else {
		if (len > size)
			abort();
		b = json_loadb(s, len, 0, NULL);
		if (!a != !b)
			abort();
		if (a)
			same_around(a, b, what == KUBE_PRUNE_LIST ? "items" : "object", pod);
		json_decref(b);
	}
	json_decref(a);
	free(s);
	return 0;
}
