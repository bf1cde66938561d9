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
 * Objects kept: Namespace, Pod, Service; AuthorizationPolicy and
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
#include <netinet/in.h>

struct mesh_index;

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
	uint16_t port;
	uint16_t target_port;       /* numeric targetPort, 0 when named */
	const char *target_port_name; /* named targetPort, or NULL: resolved per
					 pod, mesh_pod_target_port() */
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
};

struct mesh {
	struct mesh_namespace *namespaces;
	size_t n_namespaces;
	struct mesh_pod *pods;
	size_t n_pods;
	struct mesh_service *services;
	size_t n_services;
	json_t *authorization_policies; /* array of raw objects */
	json_t *peer_authentications;   /* array of raw objects */
	uint64_t generation;            /* set by the owner on swap */
	struct mesh_index *index;       /* lookups' hash indexes (conf/mesh_index.h);
					   NULL: they scan (a model filled by hand) */
};

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
void mesh_free(struct mesh *m);

const char *mesh_label(const struct mesh_labels *l, const char *key); /* NULL if absent */
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
/* Iterate the Services selecting pod p (an element of m->pods), likewise. */
const struct mesh_service *mesh_pod_next_service(const struct mesh *m, const struct mesh_pod *p,
						 size_t *pos);
/* The port pod p serves Service port sp on: the numeric targetPort (or the
 * port itself), or for a named targetPort the first container port of p
 * with that name and protocol. 0 when p has no such port: p is then not an
 * endpoint of sp, as in Kubernetes' EndpointSlices. */
uint16_t mesh_pod_target_port(const struct mesh_pod *p, const struct mesh_service_port *sp);
/* Does the selector match these labels (all selector pairs present)? An
 * empty selector matches nothing (Kubernetes Service semantics). */
bool mesh_selector_matches(const struct mesh_labels *selector, const struct mesh_labels *labels);

/* Enrollment decision (ambient-reference.md §2.4): a pod is enrolled when
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

/* Parse "10.1.2.3" / "fd00::1" into ip. 0 or -EINVAL. */
int mesh_ip_parse(const char *s, struct mesh_ip *ip);
bool mesh_ip_equal(const struct mesh_ip *a, const struct mesh_ip *b);
bool mesh_ip_in(const struct mesh_ip *ips, size_t n, const struct mesh_ip *ip);
/* Format into buf (INET6_ADDRSTRLEN). Returns buf. */
const char *mesh_ip_str(const struct mesh_ip *ip, char *buf, size_t len);

#endif
