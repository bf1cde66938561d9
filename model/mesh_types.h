/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mesh model's data types (a model is built by model/mesh.h and
 * indexed by model/mesh_index.h) and the pure functions over them: labels,
 * selectors, addresses. Strings are owned by the model that holds the
 * struct; these functions allocate nothing, keep no state and may be
 * called from any thread.
 */
#ifndef WARREN_MESH_TYPES_H
#define WARREN_MESH_TYPES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

struct mesh_index;
struct mesh_httproute;

struct mesh_label {
	const char *key;
	const char *value;
};

struct mesh_labels {
	struct mesh_label *items;
	size_t n;
};

struct mesh_ip {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
};

struct mesh_namespace {
	const char *name;
	struct mesh_labels labels;
};

/* A named port of one of a pod's containers: what a Service's named
 * targetPort resolves to (spec.containers[].ports[], then those of sidecar
 * init containers, restartPolicy Always; as Kubernetes' FindPort). */
struct mesh_container_port {
	const char *name;
	const char *protocol; /* "TCP" default */
	uint16_t port;        /* containerPort */
};

struct mesh_pod {
	const char *namespace;
	const char *name;
	const char *uid;             /* may be "" */
	const char *service_account; /* "default" when unset */
	const char *node;            /* spec.nodeName, may be "" */
	bool host_network;
	bool ready;                  /* status.phase Running and Ready condition not False */
	bool running;                /* status.phase Running (or no phase given) */
	bool finished;               /* status.phase Succeeded or Failed: holds no IP */
	bool kept;                   /* copied from an earlier model (MESH_ANNOTATION_KEPT) */
	struct mesh_labels labels;
	struct mesh_labels annotations; /* metadata.annotations */
	struct mesh_ip *ips;         /* status.podIPs (or podIP) */
	size_t n_ips;
	struct mesh_container_port *ports; /* named container ports only, in spec order */
	size_t n_ports;
};

struct mesh_service_port {
	const char *name;     /* may be "" */
	const char *protocol; /* "TCP" default */
	const char *app_protocol; /* appProtocol, or "" */
	uint16_t port;
	uint16_t target_port;       /* numeric targetPort, 0 when named */
	const char *target_port_name; /* named targetPort, or NULL: resolved per
					 pod, mesh_pod_target_port() */
};

/* An address of a Service without a selector, from its EndpointSlices
 * (discovery.k8s.io/v1, label kubernetes.io/service-name; the first of
 * each endpoint's addresses, as Kubernetes' consumers do). */
struct mesh_endpoint {
	struct mesh_ip ip;
	bool ready;                 /* conditions.ready; unset counts as ready */
	const struct mesh_pod *pod; /* the non-host-network pod holding ip, or NULL */
	uint16_t *ports;            /* per Service port, in its order: the slice port
				       of the same name and protocol, 0 when none */
};

struct mesh_service {
	const char *namespace;
	const char *name;
	struct mesh_labels labels;   /* e.g. istio.io/use-waypoint */
	struct mesh_labels selector;
	struct mesh_ip *vips;        /* spec.clusterIP(s), "None" skipped */
	size_t n_vips;
	struct mesh_service_port *ports;
	size_t n_ports;
	struct mesh_endpoint *endpoints; /* selector-less Services only (else the
					    selected pods are the endpoints) */
	size_t n_endpoints;
};

/* istio.io/waypoint-for on a waypoint Gateway: which traffic it serves. */
enum mesh_waypoint_for {
	MESH_WAYPOINT_FOR_SERVICE, /* default */
	MESH_WAYPOINT_FOR_WORKLOAD,
	MESH_WAYPOINT_FOR_ALL,
	MESH_WAYPOINT_FOR_NONE,
};

/* A gateway.networking.k8s.io/v1 Gateway. Only gatewayClassName
 * istio-waypoint ones are waypoints (model/waypoint.h); others are kept
 * with waypoint false and otherwise unchecked. */
struct mesh_gateway {
	const char *namespace;
	const char *name;
	const char *class_name;
	bool waypoint;                   /* gatewayClassName istio-waypoint */
	enum mesh_waypoint_for waypoint_for;
	uint16_t hbone_port;             /* its HBONE listener's port: 15008 */
	struct mesh_labels labels;
	/* Its pods (label gateway.networking.k8s.io/gateway-name = name, same
	 * namespace), ready or not; its address is its ready pods'. */
	const struct mesh_pod **pods;
	size_t n_pods;
};

struct mesh {
	struct mesh_namespace *namespaces;
	size_t n_namespaces;
	struct mesh_pod *pods;
	size_t n_pods;
	struct mesh_service *services;
	size_t n_services;
	struct mesh_gateway *gateways;
	size_t n_gateways;
	struct mesh_httproute *httproutes; /* model/httproute.h */
	size_t n_httproutes;
	json_t *authorization_policies; /* array of raw objects */
	json_t *peer_authentications;   /* array of raw objects */
	uint64_t generation;            /* set by the owner on swap */
	struct mesh_index *index;       /* lookups' hash indexes (model/mesh_index.h);
					   NULL: they scan (a model filled by hand) */
};

const char *mesh_label(const struct mesh_labels *l, const char *key); /* NULL if absent */

/* Does the selector match these labels (all selector pairs present)? An
 * empty selector matches nothing (Kubernetes Service semantics). */
bool mesh_selector_matches(const struct mesh_labels *selector, const struct mesh_labels *labels);

/* Parse "10.1.2.3" / "fd00::1" into ip. 0 or -EINVAL. */
int mesh_ip_parse(const char *s, struct mesh_ip *ip);
bool mesh_ip_equal(const struct mesh_ip *a, const struct mesh_ip *b);
bool mesh_ip_in(const struct mesh_ip *ips, size_t n, const struct mesh_ip *ip);
/* Format into buf (INET6_ADDRSTRLEN). Returns buf. */
const char *mesh_ip_str(const struct mesh_ip *ip, char *buf, size_t len);

#endif
