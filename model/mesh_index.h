/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hash indexes over a built mesh model (model/mesh.c's lookups use them):
 * pods by IP, uid and namespace/name, Services by VIP, namespaces by name,
 * and, both ways, which pods each Service's selector picks. A relayed
 * connection looks the model up several times, so these keep its cost the
 * same with 20 000 pods as with 20.
 *
 * Built once by mesh_build() after the model is complete (the model is
 * immutable from then on) and freed by mesh_free(). Lookups return element
 * indexes into the model's arrays, or -1; on equal keys the first in model
 * order wins, as a scan would find it. Pods by IP are the exception: a
 * finished pod holds no IP, and of several pods claiming one the best by
 * mesh_pod_ip_rank() wins; a tie at the top is a conflict (-2).
 */
#ifndef WARREN_MESH_INDEX_H
#define WARREN_MESH_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "model/mesh_types.h"

/* How well a pod holds its IPs (mesh.h's mesh_pod_ip_rank, passed in so
 * that this module does not include mesh.h, which includes this one). */
typedef int (*mesh_index_rank_fn)(const struct mesh *m, const struct mesh_pod *p);
/* NULL when out of memory (lookups then scan: slower, same answers). */
struct mesh_index *mesh_index_build(const struct mesh *m, mesh_index_rank_fn rank);
void mesh_index_free(struct mesh_index *x);

ssize_t mesh_index_pod_by_ip(const struct mesh_index *x, const struct mesh *m, const struct mesh_ip *ip);
/* How many IPs are in conflict; *first (may be NULL) gets one of them. */
size_t mesh_index_ip_conflicts(const struct mesh_index *x, struct mesh_ip *first);
ssize_t mesh_index_service_by_vip(const struct mesh_index *x, const struct mesh *m,
				  const struct mesh_ip *ip);
ssize_t mesh_index_pod_by_uid(const struct mesh_index *x, const struct mesh *m, const char *uid);
ssize_t mesh_index_pod_by_name(const struct mesh_index *x, const struct mesh *m, const char *ns,
			       const char *name);
ssize_t mesh_index_namespace(const struct mesh_index *x, const struct mesh *m, const char *name);
/* The pods Service svc selects (its namespace, its selector), as indexes
 * into m->pods in model order; the Services selecting pod p, likewise.
 * *n gets the count; the array belongs to the index. */
const uint32_t *mesh_index_service_pods(const struct mesh_index *x, size_t svc, size_t *n);
const uint32_t *mesh_index_pod_services(const struct mesh_index *x, size_t pod, size_t *n);

#endif
