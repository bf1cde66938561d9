/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One version of what the waypoint decides with: the mesh model, the
 * policies compiled for this waypoint, and what its source refused
 * (fail closed). Reference counted: the waypoint holds the current one,
 * each stream the one its request in flight was decided with, so a new
 * model (waypoint/source.h) applies to the next request while the requests
 * in flight finish with theirs.
 *
 * Refused: a Service (or every Service of a namespace, or all) whose
 * configuration the source refused, with the reason; its HTTP requests get
 * 503 until the object is fixed or deleted.
 *
 * Ownership: wmodel_new takes mesh, authz and refused; the last unref
 * frees them. Single-threaded (the waypoint's loop).
 */
#ifndef WARREN_WAYPOINT_WMODEL_H
#define WARREN_WAYPOINT_WMODEL_H

#include <stdint.h>

#include <jansson.h>

#include "model/authz.h"
#include "model/mesh.h"

struct wmodel {
	unsigned refs;
	uint64_t gen;               /* 1, 2, ... in the order installed */
	struct mesh *mesh;
	struct authz_set *authz;
	/* "NS/NAME" (a Service), "NS/" (a namespace's Services) or "*" (all)
	 * -> a string naming the refused object and field */
	json_t *refused;
};

/* NULL when out of memory (then the three are freed). refused may be NULL. */
struct wmodel *wmodel_new(struct mesh *m, struct authz_set *a, json_t *refused, uint64_t gen);
struct wmodel *wmodel_ref(struct wmodel *wm);
void wmodel_unref(struct wmodel *wm);
/* Records in refused (a JSON object) what the source's refusal of object
 * kind "ns/name" (obj, as sent; err the builder's error) leaves without its
 * configuration: an HTTPRoute's parentRefs of kind Service (every Service
 * of its namespace when they cannot be read), an AuthorizationPolicy's
 * namespace (all, in the root namespace root_ns); other kinds nothing. */
void wmodel_refuse(json_t *refused, const char *kind, const char *key, json_t *obj, const char *err,
		   const char *root_ns);
/* Why HTTP requests to Service ns/name are refused, or NULL. */
const char *wmodel_refused(const struct wmodel *wm, const char *ns, const char *name);

#endif
