/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Waypoint attachment (Istio ambient's labels, warren's failure policy):
 * which waypoint, if any, a Service's or a pod's traffic must go through.
 * Pure functions over a built model (model/mesh.h): no allocation, no
 * state, any thread; returned pointers live as long as the model.
 *
 * Resolution. The object's own label istio.io/use-waypoint is used first,
 * else its namespace's; "none" (on the object) opts out even when its
 * namespace names a waypoint. The waypoint's namespace is
 * istio.io/use-waypoint-namespace from the same object as the name, else
 * that object's namespace. The waypoint is the Gateway of that namespace
 * and name (model: struct mesh_gateway, gatewayClassName istio-waypoint).
 * A Service needs a waypoint for `service` or `all`, a pod one for
 * `workload` or `all` (istio.io/waypoint-for); on a mismatch the object is
 * not bound, as in Istio (the waypoint does not claim that traffic).
 * Waypoint pods, and the Service named like their Gateway in its
 * namespace, are never bound.
 *
 * Failure policy (warren's, unlike Istio's): a binding to a Gateway that
 * is absent, of another class, or has no ready pod is reported as such
 * (MESH_WP_MISSING, MESH_WP_NOT_READY), and the tunnel refuses the
 * traffic instead of sending it past the waypoint's L7 policy.
 */
#ifndef WARREN_WAYPOINT_H
#define WARREN_WAYPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "model/mesh.h"

enum mesh_wp_state {
	MESH_WP_NONE,      /* not bound: direct */
	MESH_WP_BOUND,     /* bound to gw, which has a ready pod */
	MESH_WP_MISSING,   /* bound to a Gateway that does not exist or is no waypoint */
	MESH_WP_NOT_READY, /* bound to gw, which has no ready pod */
};

struct mesh_wp_binding {
	enum mesh_wp_state state;
	const char *ns;   /* the waypoint's namespace and name (MESH_WP_NONE: NULL) */
	const char *name;
	const struct mesh_gateway *gw; /* BOUND, NOT_READY: the Gateway */
	/* why, for logs and access logs: a static string */
	const char *reason;
};

/* Which waypoint a Service's (VIP-addressed) traffic goes through. */
void mesh_service_waypoint(const struct mesh *m, const struct mesh_service *svc,
			   struct mesh_wp_binding *out);
/* Which waypoint a pod's (pod-IP-addressed) traffic goes through. */
void mesh_pod_waypoint(const struct mesh *m, const struct mesh_pod *p, struct mesh_wp_binding *out);

const struct mesh_gateway *mesh_find_gateway(const struct mesh *m, const char *ns, const char *name);
/* The waypoint Gateway whose pod p is, or NULL. */
const struct mesh_gateway *mesh_pod_waypoint_gateway(const struct mesh *m, const struct mesh_pod *p);
/* Iterate gw's ready pods that have an IP of family (AF_UNSPEC: any);
 * *pos starts at 0; NULL at the end. */
const struct mesh_pod *mesh_gateway_next_ready_pod(const struct mesh_gateway *gw, int family,
						   size_t *pos);

/* Is workload p bound to a waypoint (its own binding, or that of a Service
 * selecting it), ready or not? Then its inbound HBONE is accepted only
 * from that waypoint's identity (no bypass; a missing waypoint admits
 * nobody) unless it opts its pod-addressed traffic out with annotation
 * MESH_ANNOTATION_ALLOW_DIRECT = "true". *out gets the (first) binding. */
#define MESH_ANNOTATION_ALLOW_DIRECT "warren.io/waypoint-allow-direct"
bool mesh_pod_requires_waypoint(const struct mesh *m, const struct mesh_pod *p,
				struct mesh_wp_binding *out);
/* Is the peer (namespace, service account of its SPIFFE ID) the identity
 * of binding b's waypoint: its namespace, and the service account of one
 * of its pods or, as Istio's rendered waypoints use, its name? */
bool mesh_waypoint_identity(const struct mesh_wp_binding *b, const char *peer_ns,
			    const char *peer_sa);

const char *mesh_wp_state_name(enum mesh_wp_state s);

#endif
