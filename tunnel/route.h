/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection's route, resolved once: the one place where a captured
 * (15001, 15006) or HBONE-delivered (15008) connection meets the mesh
 * model. Everything that needs to know where a connection goes or who it
 * is with (the HBONE dial in mtls.c, authorization, metrics labels, the
 * access log, the admin API) reads the record; none of them looks the
 * addresses up again.
 *
 * Ownership: a struct route is embedded in its struct conn (c->route) and
 * owns its strings (peer_id, the waypoint's); route_clear() frees them.
 *
 * Lifetime of the model pointers (local, peer, svc, svc_port): they are
 * borrowed from the model of the snapshot (snap.h) the connection's worker
 * used when the route was resolved (generation). The worker holds that
 * snapshot until its next safe point (the top of a loop iteration); when
 * it takes a new one it calls route_rebind() on every route of its shards
 * (proxy_snap_changed) before it lets the old one go, so the pointers are
 * always into the model the worker holds. The rest (target, hbone_addr, authority,
 * peer_id, waypoint) is the routing decision: fixed at resolution, valid
 * for the connection's lifetime.
 *
 * Threads: route_outbound(), route_inbound() and route_rebind() run on the
 * connection's worker and read that worker's snapshot (tunnel_model);
 * route_local_pod() reads the calling thread's (the main thread's: the
 * published one).
 */
#ifndef WARREN_TUNNEL_ROUTE_H
#define WARREN_TUNNEL_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "model/mesh.h"

struct tunnel;
struct pod;

/* The waypoint the connection goes through (L7; docs/waypoint.md). Empty
 * (addr.ss_family 0, name NULL) when the destination is not bound to one.
 * When it is, route_outbound fills it and the route is ROUTE_HBONE to the
 * waypoint (hbone_addr, authority and peer_id the same as here), or
 * ROUTE_REFUSE when the waypoint is missing or has no ready pod (fail
 * closed): then name and refused say which and why, for the metric. */
struct route_waypoint {
	struct sockaddr_storage addr; /* the waypoint's HBONE address */
	char *identity;               /* the SPIFFE ID expected of it (owned) */
	char *authority;              /* :authority to ask it for (owned) */
	char *name;                   /* "ns/name" of its Gateway (owned) */
	const char *refused;          /* "missing", "not_ready", or NULL */
};

enum route_kind {
	ROUTE_PLAIN = 0, /* plain TCP to target */
	ROUTE_HBONE,     /* HBONE to hbone_addr, :authority authority, peer peer_id */
	ROUTE_REFUSE,    /* refused: the resolver's why says why */
};

struct route {
	enum route_kind kind;
	bool inbound;                            /* route_inbound's */
	uint64_t generation;                     /* of the model the pointers came from */
	const struct mesh_pod *local;            /* this pod in the model, or NULL */
	const struct mesh_pod *peer;             /* outbound: the destination workload;
						  * inbound: the source workload; or NULL */
	const struct mesh_service *svc;          /* the Service reached, or NULL */
	const struct mesh_service_port *svc_port; /* its port (outbound to a VIP) */
	bool via_vip;                            /* dst was svc's VIP (peer: the endpoint) */
	struct sockaddr_storage target;          /* where the upstream connects */
	struct sockaddr_storage hbone_addr;      /* ROUTE_HBONE: <pod IP>:15008 */
	char authority[80];                      /* ROUTE_HBONE: "<pod IP>:<port>" */
	/* The peer's SPIFFE ID: outbound HBONE the one expected of the
	 * destination, inbound HBONE the one the client proved; NULL plain. */
	char *peer_id;
	struct route_waypoint waypoint;
};

/* Start p's connection's route (conn_new): zeroed, the local pod bound. */
void route_begin(struct route *r, const struct tunnel *t, const struct pod *p);
/*
 * Outbound (15001) from pod p to its original destination dst. With
 * resolve (mTLS mode): a Service VIP picks a ready endpoint round-robin and
 * maps the port; an enrolled destination (or a pod enrolled and held here,
 * whatever the model says) is ROUTE_HBONE with the identity it must
 * present (trust domain td); an address several live pods claim, a Service
 * port or endpoint that does not exist is ROUTE_REFUSE with why. Without
 * resolve (mtls: disabled) only the labels are found and target is dst.
 * Returns r->kind; r was begun (route_begin) and is route_clear()ed in any
 * case.
 */
enum route_kind route_outbound(struct route *r, const struct tunnel *t, const struct pod *p,
			       const struct sockaddr_storage *dst, bool resolve, char *why,
			       size_t whylen);
/* Inbound (15006, or an HBONE stream) from src to pod p's address dst:
 * the local pod, the source workload, the Service of the local pod whose
 * targetPort is dst's port; target is dst. peer_id is the caller's to set
 * (the identity the HBONE client proved) and is kept. */
void route_inbound(struct route *r, const struct tunnel *t, const struct pod *p,
		   const struct sockaddr_storage *src, const struct sockaddr_storage *dst);
/* The model changed: an inbound route points local, peer and svc into the
 * model in use again; an outbound one keeps its decision, refreshes local
 * and drops peer and svc. The connection's worker, at its safe point. */
void route_rebind(struct route *r, const struct tunnel *t, const struct pod *p,
		  const struct sockaddr_storage *src, const struct sockaddr_storage *dst);
void route_clear(struct route *r);
/* Pod p in the model in use: by uid, else by namespace/name; NULL. */
const struct mesh_pod *route_local_pod(const struct tunnel *t, const struct pod *p);
/* "<name>.<namespace>.svc.cluster.local" of r->svc into buf, "" without. */
const char *route_service_host(const struct route *r, char *buf, size_t len);

/* Socket address <-> model address. false: not AF_INET/AF_INET6. port may
 * be NULL. */
bool route_ss_to_ip(const struct sockaddr_storage *ss, struct mesh_ip *ip, uint16_t *port);
void route_ip_to_ss(const struct mesh_ip *ip, uint16_t port, struct sockaddr_storage *ss);

#endif
