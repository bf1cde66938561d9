/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the policy engine: the compiled form of a policy set, which
 * the compiler (authz_compile.c) builds and the evaluator (authz_eval.c)
 * reads. Everything a set points to lives in its arena; nothing is
 * modified after authz_compile() returns, so any thread may read a set
 * until authz_set_free(). Field and value semantics follow ztunnel's RBAC
 * (RbacMatch): each match holds, per field, a positive and a not-form list.
 */
#ifndef WARREN_AUTHZ_SET_H
#define WARREN_AUTHZ_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/arena.h"
#include "model/authz.h"

/* Match field types, as in ztunnel's RbacMatch. */
/* AZ_F_HOST .. AZ_F_HDR: HTTP attributes, compiled only for a waypoint
 * (authz_compile_waypoint); a tunnel's set never has them. */
enum az_field { AZ_F_NS, AZ_F_PR, AZ_F_SA, AZ_F_SIP, AZ_F_DIP, AZ_F_DPORT, AZ_F_HOST, AZ_F_METHOD,
		AZ_F_PATH, AZ_F_HDR, AZ_F_MAX };
enum az_vtype { AZ_T_STR, AZ_T_SA, AZ_T_IP, AZ_T_PORT, AZ_T_L7, AZ_T_L7IP, AZ_T_HDR };
enum az_smkind { AZ_SM_EXACT, AZ_SM_PREFIX, AZ_SM_SUFFIX, AZ_SM_PRESENCE };

struct az_strmatch {
	enum az_smkind kind;
	const char *s;
	size_t len;
};

struct az_samatch {
	const char *ns;
	const char *sa;
};

/* request.headers[name] (name lower-case) */
struct az_hdrmatch {
	const char *name;
	struct az_strmatch m;
};

struct az_cidr {
	int family;
	uint8_t addr[16];
	unsigned bits;
};

struct az_flist {
	size_t n;
	union {
		struct az_strmatch *s;
		struct az_samatch *sa;
		struct az_cidr *c;
		uint16_t *port;
		struct az_hdrmatch *h;
	} u;
};

struct az_match {
	struct az_flist f[AZ_F_MAX][2]; /* [field][0 positive, 1 not-form] */
};

struct az_clause {
	struct az_match *m;
	size_t n;
};

struct az_rule {
	struct az_clause *c;
	size_t n;
};

/* AZ_SC_GATEWAY, AZ_SC_SERVICE: targetRefs at a waypoint (the waypoint
 * itself; the Services of targets[] in the policy's namespace). */
enum az_scope { AZ_SC_NONE, AZ_SC_GLOBAL, AZ_SC_NS, AZ_SC_WL, AZ_SC_MESH, AZ_SC_GATEWAY,
		AZ_SC_SERVICE };
enum az_action { AZ_A_ALLOW, AZ_A_DENY, AZ_A_AUDIT };
enum az_mtls { AZ_M_UNSET, AZ_M_DISABLE, AZ_M_PERMISSIVE, AZ_M_STRICT };

struct az_portmode {
	uint16_t port;
	enum az_mtls mode;
};

struct az_policy {
	enum authz_policy_kind kind;
	const char *ns, *name, *key;
	const char *created; /* creationTimestamp or "" */
	enum az_scope scope;
	const char **targets; /* AZ_SC_SERVICE: Service names */
	size_t n_targets;
	struct mesh_label *sel;
	size_t n_sel;
	enum az_action action;
	const char *action_str;
	enum authz_policy_state state;
	struct az_rule *rules;
	size_t n_rules;
	struct authz_msg *msgs;
	size_t n_msgs, cap_msgs;
	const char *first_error;
	/* PeerAuthentication */
	enum az_mtls mode;
	struct az_portmode *ports;
	size_t n_ports;
};

struct authz_set {
	struct arena ar;
	const char *root;
	struct az_policy *ap;
	size_t n_ap;
	struct az_policy *pa;
	size_t n_pa;
	size_t n_invalid;
	/* a waypoint's set (authz_compile_waypoint): its Gateway */
	bool waypoint;
	const char *gw_ns, *gw_name;
};

/* Does m constrain nothing (no field, in either form)? */
static inline bool az_match_is_empty(const struct az_match *m)
{
	for (int f = 0; f < AZ_F_MAX; f++)
		if (m->f[f][0].n || m->f[f][1].n)
			return false;
	return true;
}

#endif
