/* SPDX-License-Identifier: Apache-2.0 */
/*
 * L4 authorization engine (Istio's L4 semantics): compiles the raw
 * security.istio.io AuthorizationPolicy and PeerAuthentication objects kept
 * by model/mesh.h into an immutable set, and decides whether one inbound
 * connection to one workload is allowed. Pure library: no I/O, no logging,
 * no global state; a compiled set may be read from any number of threads.
 *
 * Semantics are Istio ambient's (istiod authorization.go conversion +
 * ztunnel rbac.rs evaluation):
 *
 *  Scope. No spec.selector: NAMESPACE (workloads of the policy's namespace);
 *  in the root namespace: GLOBAL (every workload). spec.selector.matchLabels:
 *  WORKLOAD_SELECTOR, selecting workloads whose labels contain all pairs, in
 *  the policy's namespace, or in any namespace when the policy lives in the
 *  root namespace. A selector with no matchLabels selects nothing (istiod
 *  attaches selector policies by labels only); a warning says so.
 *
 *  Ignored (state AUTHZ_POLICY_IGNORED, with a message, never enforced):
 *  action AUDIT or CUSTOM ("ztunnel does not support the ... action"),
 *  policies with targetRef/targetRefs (they are for waypoints/gateways),
 *  policies with the istio.io/dry-run annotation set to true.
 *
 *  Rules. rules[] are OR-ed; a rule is the AND of its clauses: one clause
 *  for to[] (one match per operation), one for from[] (one match per
 *  source), one per when[] condition. A match ANDs its fields, ORs the
 *  values of one field, and requires no hit in every not-list. A match with
 *  no L4 field left is skipped (it never matches); a rule with no clause
 *  (`rules: [{}]`) matches everything; a policy with no rules matches
 *  nothing. So `spec: {}` (ALLOW, no rules) denies everything it selects,
 *  `rules: [{}]` in an ALLOW allows everything, in a DENY denies everything.
 *
 *  Fields. principals / namespaces: "*" presence, "*x" suffix, "x*" prefix,
 *  else exact; principals are compared with the peer SPIFFE ID minus
 *  "spiffe://", namespaces with the namespace inside the peer identity (not
 *  the source pod's). serviceAccounts "ns/sa" or bare "sa" (= the policy's
 *  namespace), exact against the identity. ipBlocks: CIDR or bare IP, v4 or
 *  v6. ports: decimal strings 1..65535. when keys source.ip,
 *  source.namespace, source.principal, destination.ip, destination.port with
 *  values / notValues. No identity (plaintext) never matches principals,
 *  namespaces or serviceAccounts, so it always passes their not-forms.
 *
 *  HTTP (L7) fields (hosts, methods, paths and their not-forms,
 *  requestPrincipals, remoteIpBlocks, trustDomains and their not-forms, any
 *  other when key): in an ALLOW policy the whole rule is dropped (never
 *  matches); in a DENY policy only those fields are dropped, per match, so
 *  a to/from entry or when condition made only of L7 fields becomes an
 *  empty match, which never matches, which makes its rule never match. Both
 *  add a warning to the policy.
 *
 *  PeerAuthentication. The oldest (metadata.creationTimestamp, then
 *  namespace/name) policy at each level is effective: mesh (root namespace,
 *  no selector), namespace (workload's namespace, no selector), workload
 *  (selector, not in the root namespace). Mode resolves mesh -> namespace ->
 *  workload, UNSET inherits, PERMISSIVE and DISABLE (= PERMISSIVE here; the
 *  tunnel always does mTLS) override STRICT. portLevelMtls on the workload
 *  policy refines it per destination port, as istiod does. Effective STRICT
 *  = DENY when the connection has no peer identity.
 *
 *  Invalid objects (wrong JSON types, unknown fields, bad CIDR, bad port,
 *  unknown action or mode, empty values, and the other checks of Istio's
 *  admission validation) are kept with state AUTHZ_POLICY_INVALID and their
 *  messages; every workload in their scope FAILS CLOSED: each connection to
 *  it is denied with reason "policy <ns>/<name> is invalid: ...". When the
 *  selector itself is unreadable, the scope is the whole namespace (the
 *  whole mesh in the root namespace).
 *
 *  Decision order: invalid policy in scope -> deny; STRICT
 *  PeerAuthentication and no identity -> deny; any matching DENY -> deny;
 *  no ALLOW policy in scope -> allow; a matching ALLOW -> allow; else deny.
 *  Policies are examined in namespace/name order, so the deciding policy
 *  named in a decision is deterministic.
 */
#ifndef WARREN_AUTHZ_H
#define WARREN_AUTHZ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/mesh.h"

#define AUTHZ_DEFAULT_ROOT_NAMESPACE "istio-system"

struct authz_set;

/* The destination workload. All borrowed; labels may be empty. */
struct authz_workload {
	const char *namespace;
	const char *name;
	struct mesh_labels labels;
	const char *service; /* a waypoint's request: the Service addressed, or NULL */
};

/* One inbound connection. dst_port is the port after target-port
 * resolution. IPv4-mapped IPv6 addresses are treated as IPv4.
 * peer_identity: the peer's SPIFFE URI ("spiffe://td/ns/N/sa/S"), or NULL
 * for plaintext. */
struct authz_conn {
	struct mesh_ip src_ip;
	uint16_t src_port; /* unused by L4 policy */
	struct mesh_ip dst_ip;
	uint16_t dst_port;
	const char *peer_identity;
};

#define AUTHZ_NO_POLICIES      "(no policies)"
#define AUTHZ_NO_ALLOW_POLICY  "(no allow policies)"
#define AUTHZ_NO_ALLOW_MATCHED "(no allow policy matched)"

struct authz_decision {
	bool allow;
	/* "ns/name" of the deciding policy, or one of the AUTHZ_NO_* strings. */
	char policy[320];
	/* Human-readable explanation, for logs and access logs. */
	char reason[512];
	/* authz_evaluate_request: the first AUDIT policy that matched, or "" */
	char audit[320];
};

/*
 * Compiles the policies. Either array may be NULL (= none); their elements
 * are borrowed, only read, and not referenced after return. root_namespace
 * NULL means AUTHZ_DEFAULT_ROOT_NAMESPACE. Objects that are invalid do not
 * make this fail (see above). *out is owned by the caller
 * (authz_set_free); it is NULL on failure.
 * Returns 0, -EINVAL (an argument is not a JSON array) or -ENOMEM.
 */
int authz_compile(const json_t *authorization_policies, const json_t *peer_authentications,
		  const char *root_namespace, struct authz_set **out);
void authz_set_free(struct authz_set *set);

/* Number of objects the set holds (every state), and how many are invalid. */
size_t authz_set_count(const struct authz_set *set);
size_t authz_set_invalid_count(const struct authz_set *set);

/*
 * Decides one connection. set may be NULL (no policies: allow). *out is
 * always filled. Returns 0 on allow, -EACCES on deny. Never allocates.
 */
int authz_evaluate(const struct authz_set *set, const struct authz_workload *dst,
		   const struct authz_conn *conn, struct authz_decision *out);

/*
 * A waypoint's policy set (L7). Only AuthorizationPolicies with targetRefs
 * are in it: kind Gateway naming gw_name in gw_ns (the policy must live in
 * gw_ns) scopes a policy to every request through the waypoint; kind
 * Service (core group) to requests addressed to those Services of the
 * policy's namespace. A policy for another Gateway, or without targetRefs
 * (a selector policy: the destination tunnels enforce it), is ignored; a
 * target of another kind or namespace makes it invalid, and an invalid
 * policy denies every request through the waypoint (fail closed).
 * Besides the L4 fields: to.operation hosts (ASCII case-insensitive),
 * methods, paths (exact, "x*" prefix, "*x" suffix, "*" presence; the path
 * without its query) and their not-forms; when key request.headers[name]
 * (values / notValues, same forms; name case-insensitive). AUDIT is
 * accepted and only reported (decision.audit). requestPrincipals,
 * remoteIpBlocks, trustDomains and other when keys are not enforced: as in
 * a tunnel's set, an ALLOW rule with them never matches and a DENY rule
 * is kept without them, with a warning.
 * 0, -EINVAL, -ENOMEM.
 */
int authz_compile_waypoint(const json_t *authorization_policies, const char *root_namespace,
			   const char *gw_ns, const char *gw_name, struct authz_set **out);

/* One HTTP request at a waypoint. conn: its source (the peer identity is
 * the client workload's, from the HBONE mTLS), dst_ip/dst_port the
 * addressed VIP or pod and port. Strings NUL-terminated; header(ctx, name,
 * &len) returns the value of a header (name lower-case) or NULL. */
struct authz_request {
	struct authz_conn conn;
	const char *svc_namespace; /* the Service addressed (or the pod's namespace) */
	const char *svc_name;      /* NULL: pod-addressed */
	const char *method, *host, *path;
	const char *(*header)(void *ctx, const char *name, size_t *len);
	void *header_ctx;
};

/* Decides one request against a waypoint's set, in Istio's order: an
 * invalid policy in scope denies; a matching DENY denies; with ALLOW
 * policies in scope one must match. 0 allow, -EACCES deny; *out filled. */
int authz_evaluate_request(const struct authz_set *set, const struct authz_request *rq,
			   struct authz_decision *out);

enum authz_policy_kind { AUTHZ_KIND_AUTHORIZATION, AUTHZ_KIND_PEER_AUTHENTICATION };
enum authz_policy_state {
	AUTHZ_POLICY_ACTIVE,  /* enforced (may carry warnings) */
	AUTHZ_POLICY_IGNORED, /* never enforced, see messages */
	AUTHZ_POLICY_INVALID, /* fails closed for its scope, see messages */
};
enum authz_msg_level { AUTHZ_MSG_WARNING, AUTHZ_MSG_ERROR, AUTHZ_MSG_INFO };

struct authz_msg {
	enum authz_msg_level level;
	const char *text;
};

/* A read-only view of one compiled object; valid while the set lives. */
struct authz_policy_info {
	enum authz_policy_kind kind;
	const char *namespace;
	const char *name;
	const char *key;    /* "ns/name" */
	const char *scope;  /* "global", "namespace", "workload", "mesh" (PeerAuthentication) */
	const char *action; /* "ALLOW", "DENY"; PeerAuthentication: its mode ("STRICT", ...) */
	enum authz_policy_state state;
	const struct authz_msg *msgs;
	size_t n_msgs;
};

typedef void (*authz_policy_cb)(const struct authz_policy_info *info, void *ctx);

/* Every object of the set, in namespace/name order (AuthorizationPolicies
 * first): for logs and the admin API. */
void authz_policies_foreach(const struct authz_set *set, authz_policy_cb cb, void *ctx);

/* The objects that apply to this workload: the AuthorizationPolicies whose
 * scope selects it (active and invalid), then the PeerAuthentications that
 * are effective for it (mesh, namespace, workload level) and any invalid
 * one whose scope selects it. */
void authz_policies_selecting(const struct authz_set *set, const struct authz_workload *w,
			      authz_policy_cb cb, void *ctx);

const char *authz_state_name(enum authz_policy_state s);
const char *authz_msg_level_name(enum authz_msg_level l);

#endif
