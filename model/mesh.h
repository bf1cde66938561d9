/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh model: the tunnel's in-memory view of namespaces, pods,
 * services and policies, built from Kubernetes objects (file mode: a file
 * or a directory of *.json, *.yaml, *.yml files, read in name order).
 *
 * A model is immutable once built. A reload builds a new one and swaps it
 * in only when the whole load succeeded, so a broken file leaves the last
 * good model in use. mesh_free() frees everything the model owns,
 * including the strings that the structs below point to.
 *
 * Objects kept: Namespace, Pod, Service, EndpointSlice (the endpoints of
 * the Services without a selector; for a Service with one, its pods are
 * the endpoints, as in Istio's ambient mode); AuthorizationPolicy and
 * PeerAuthentication (security.istio.io) are kept as raw JSON for the
 * policy engine. Other kinds are ignored. An object of a known kind with a
 * wrong shape (e.g. metadata.name missing) fails the load with a message
 * naming the file and the object.
 */
#ifndef WARREN_MESH_H
#define WARREN_MESH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/mesh_types.h"

/* Build a model from a file or directory. *out owned by the caller. An
 * empty (0-byte) file is an error, never an empty model: it is what a
 * truncation or a write in progress leaves. */
int mesh_load_path(const char *path, struct mesh **out, char *err, size_t errlen);

/* A pod the new model must not lose (see mesh_load_path_keeping). */
typedef bool (*mesh_keep_fn)(void *ctx, const struct mesh_pod *p);
#define MESH_ANNOTATION_KEPT "warren.io/kept-from-generation"
/* mesh_load_path, then: every Pod of prev (may be NULL) that keep selects
 * and that the new objects lack (same namespace and name) is copied from
 * prev into the new model, annotated MESH_ANNOTATION_KEPT with prev's
 * generation (its Namespace too, when the new objects lack it). *n_kept
 * (may be NULL) gets how many; on_kept (may be NULL) is called for each.
 * A tunnel uses it so that a file cut short never silently un-enrolls
 * the pods it still holds. */
int mesh_load_path_keeping(const char *path, const struct mesh *prev, mesh_keep_fn keep,
			   void (*on_kept)(void *ctx, const struct mesh_pod *p), void *ctx,
			   size_t *n_kept, struct mesh **out, char *err, size_t errlen);
/* Build a model from an array of objects (borrowed). */
int mesh_build(json_t *objects, const char *origin, struct mesh **out, char *err, size_t errlen);
/* mesh_build, keeping prev's pods as mesh_load_path_keeping does (the
 * Kubernetes source: a model rebuilt from the API server must not drop the
 * pods a tunnel holds either). */
int mesh_build_keeping(json_t *objects, const char *origin, const struct mesh *prev,
		       mesh_keep_fn keep, void (*on_kept)(void *ctx, const struct mesh_pod *p),
		       void *ctx, size_t *n_kept, struct mesh **out, char *err, size_t errlen);
/* mesh_build_keeping without the copy: the model holds references to the
 * objects themselves, which the caller must never change afterwards (it
 * replaces an object, never edits it). The Kubernetes source's store. */
int mesh_build_shared(json_t *objects, const char *origin, const struct mesh *prev,
		      mesh_keep_fn keep, void (*on_kept)(void *ctx, const struct mesh_pod *p),
		      void *ctx, size_t *n_kept, struct mesh **out, char *err, size_t errlen);
void mesh_free(struct mesh *m);
/* 0 when mesh_build() would accept obj alone, else its error (the same
 * message), at a fraction of the cost: no copy, no indexes. The Kubernetes
 * source checks each object with it as it arrives. */
int mesh_check_object(json_t *obj, const char *origin, char *err, size_t errlen);

const struct mesh_namespace *mesh_find_namespace(const struct mesh *m, const char *name);
const struct mesh_pod *mesh_find_pod(const struct mesh *m, const char *ns, const char *name);
const struct mesh_pod *mesh_find_pod_by_uid(const struct mesh *m, const char *uid);
/* The pod that holds ip: never a finished (Succeeded, Failed) or
 * host-network one; of several, the best by mesh_pod_ip_rank(). NULL when
 * none, or when the best tie: then mesh_ip_conflict() is true, and a
 * caller must refuse rather than guess (fail closed). */
const struct mesh_pod *mesh_find_pod_by_ip(const struct mesh *m, const struct mesh_ip *ip);
bool mesh_ip_conflict(const struct mesh *m, const struct mesh_ip *ip);
/* How many IPs are in conflict; *first (may be NULL) gets one. */
size_t mesh_ip_conflicts(const struct mesh *m, struct mesh_ip *first);
/* How well pod p holds its IPs: running beats not running, then enrolled
 * beats not, then a live object beats one kept from an earlier model. */
int mesh_pod_ip_rank(const struct mesh *m, const struct mesh_pod *p);
const struct mesh_service *mesh_find_service_by_vip(const struct mesh *m, const struct mesh_ip *ip);
/* Iterate the pods Service svc (an element of m->services) selects in its
 * namespace, ready or not, in model order; *pos starts at 0. NULL at the end. */
const struct mesh_pod *mesh_service_next_pod(const struct mesh *m, const struct mesh_service *svc,
					     size_t *pos);
/* One endpoint a connection to a Service port can go to. */
struct mesh_ep {
	const struct mesh_pod *pod; /* NULL: an address outside the model */
	struct mesh_ip ip;
	uint16_t port;
};
/* Iterate the endpoints that can take a connection of this family on
 * port sp of svc. With a selector: the ready, non-host-network pods it
 * selects that have an IP of the family and serve sp
 * (mesh_pod_target_port). Without: the ready addresses of the family of
 * its EndpointSlices that have a port of sp's name and protocol. *pos
 * starts at 0; false at the end. */
bool mesh_service_next_endpoint(const struct mesh *m, const struct mesh_service *svc,
				const struct mesh_service_port *sp, int family, size_t *pos,
				struct mesh_ep *out);
/* Iterate the Services selecting pod p (an element of m->pods), likewise. */
const struct mesh_service *mesh_pod_next_service(const struct mesh *m, const struct mesh_pod *p,
						 size_t *pos);
/* The port pod p serves Service port sp on: the numeric targetPort (or the
 * port itself), or for a named targetPort the first container port of p
 * with that name and protocol. 0 when p has no such port: p is then not an
 * endpoint of sp, as in Kubernetes' EndpointSlices. */
uint16_t mesh_pod_target_port(const struct mesh_pod *p, const struct mesh_service_port *sp);

/* Enrollment decision (Istio ambient's): a pod is enrolled when
 * it is not host-network, has no sidecar (annotation
 * sidecar.istio.io/status), and either its own istio.io/dataplane-mode
 * label is "ambient", or its namespace's label is "ambient" and the pod's
 * label is not "none". A pod absent from the model is judged by its
 * namespace alone. *reason gets a human-readable explanation, not to be freed: static,
 * or a thread-local buffer valid until the next call in the same thread. */
bool mesh_pod_enrolled(const struct mesh *m, const char *ns, const char *name, const char **reason);
/* The same for a pod of m's. */
bool mesh_pod_is_enrolled(const struct mesh *m, const struct mesh_pod *p);

/* Is an enrolled pod's inbound traffic captured? false when its
 * annotation ambient.istio.io/bypass-inbound-capture is true in one of Go's
 * strconv.ParseBool spellings (Istio's "ingress mode": outbound only). A
 * value that is no boolean is ignored, as Istio does: true, with *bad_value
 * (may be NULL) pointing at it so the caller can say so; else NULL. */
bool mesh_pod_capture_inbound(const struct mesh_pod *p, const char **bad_value);

#endif
