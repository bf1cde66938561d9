/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit-test helpers shared by the model's tests: a model from YAML text
 * (mf_err says why on NULL) and a request-header lookup over a
 * name, value, ..., NULL list (the authz_request / route header callback).
 */
#ifndef WARREN_TESTS_MESH_FIXTURE_H
#define WARREN_TESTS_MESH_FIXTURE_H

#include <string.h>
#include <strings.h>

#include "conf/kobj.h"
#include "model/mesh.h"

static char mf_err[512];

static inline struct mesh *mf_build(const char *text)
{
	json_t *objs = NULL;
	struct mesh *m = NULL;

	mf_err[0] = '\0';
	if (kobj_load_text(text, strlen(text), "mesh.yaml", &objs, mf_err, sizeof(mf_err)))
		return NULL;
	if (mesh_build(objs, "mesh.yaml", &m, mf_err, sizeof(mf_err)))
		m = NULL;
	json_decref(objs);
	return m;
}

struct hdrs {
	const char *const *kv; /* name, value, ..., NULL */
};

static inline const char *hdr(void *ctx, const char *name, size_t *len)
{
	const struct hdrs *h = ctx;

	for (size_t i = 0; h->kv && h->kv[i]; i += 2)
		if (!strcasecmp(h->kv[i], name)) {
			*len = strlen(h->kv[i + 1]);
			return h->kv[i + 1];
		}
	return NULL;
}

#endif
