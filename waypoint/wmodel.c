/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's model versions (contract in waypoint/wmodel.h). */
#include "waypoint/wmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wmodel *wmodel_new(struct mesh *m, struct authz_set *a, json_t *refused, uint64_t gen)
{
	struct wmodel *wm = calloc(1, sizeof(*wm));

	if (!wm) {
		mesh_free(m);
		authz_set_free(a);
		json_decref(refused);
		return NULL;
	}
	wm->refs = 1;
	wm->gen = gen;
	wm->mesh = m;
	wm->authz = a;
	wm->refused = refused;
	return wm;
}

struct wmodel *wmodel_ref(struct wmodel *wm)
{
	if (wm)
		wm->refs++;
	return wm;
}

void wmodel_unref(struct wmodel *wm)
{
	if (!wm || --wm->refs)
		return;
	mesh_free(wm->mesh);
	authz_set_free(wm->authz);
	json_decref(wm->refused);
	free(wm);
}

const char *wmodel_refused(const struct wmodel *wm, const char *ns, const char *name)
{
	char key[512];
	const char *why;

	if (!wm->refused || !json_object_size(wm->refused))
		return NULL;
	if ((why = json_string_value(json_object_get(wm->refused, "*"))))
		return why;
	snprintf(key, sizeof(key), "%s/", ns);
	if ((why = json_string_value(json_object_get(wm->refused, key))))
		return why;
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	return json_string_value(json_object_get(wm->refused, key));
}

static void wmodel_refuse_key(json_t *refused, const char *key, const char *why)
{
	if (!json_object_get(refused, key))
		json_object_set_new(refused, key, json_string(why));
}

void wmodel_refuse(json_t *refused, const char *kind, const char *key, json_t *obj, const char *err,
		   const char *root_ns)
{
	const char *ns = json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	json_t *parents = json_object_get(json_object_get(obj, "spec"), "parentRefs"), *p;
	char why[700], k[512];
	size_t i;

	if (!ns)
		return; /* not namespaced: not one of ours */
	snprintf(why, sizeof(why), "%s %s refused: %s", kind, key, err ? err : "?");
	snprintf(k, sizeof(k), "%s/", ns);
	if (!strcmp(kind, "AuthorizationPolicy")) {
		wmodel_refuse_key(refused, root_ns && !strcmp(ns, root_ns) ? "*" : k, why);
		return;
	}
	if (strcmp(kind, "HTTPRoute"))
		return; /* a refused Service or Gateway is absent: its traffic is not served */
	if (!json_is_array(parents) || !json_array_size(parents)) {
		wmodel_refuse_key(refused, k, why);
		return;
	}
	json_array_foreach(parents, i, p) {
		const char *pk = json_string_value(json_object_get(p, "kind"));
		const char *pn = json_string_value(json_object_get(p, "name"));
		const char *pns = json_string_value(json_object_get(p, "namespace"));

		/* no kind: the Gateway API's default, a Gateway (an ingress
		 * route, not the mesh's) */
		if (json_is_object(p) && (!pk || strcmp(pk, "Service")))
			continue;
		if (!json_is_object(p) || !pn)
			snprintf(k, sizeof(k), "%s/", pns ? pns : ns); /* which Service: cannot tell */
		else
			snprintf(k, sizeof(k), "%s/%s", pns ? pns : ns, pn);
		wmodel_refuse_key(refused, k, why);
	}
}
