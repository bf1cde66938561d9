/* SPDX-License-Identifier: Apache-2.0 */
/* The waypoint's model versions (contract in waypoint/wmodel.h). */
#include "waypoint/wmodel.h"

#include <stdio.h>
#include <stdlib.h>

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
