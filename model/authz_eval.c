/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine's evaluator and listing (contract in model/authz.h;
 * the compiled form in authz_set.h). Evaluation mirrors ztunnel's rbac.rs,
 * so that the same objects give the same decisions; it reads the set and
 * allocates nothing.
 */
#include "model/authz.h"
#include "model/authz_set.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- evaluation ---- */

struct ectx {
	const char *principal; /* identity without "spiffe://", NULL if none */
	size_t principal_len;
	const char *id_ns; /* namespace of the identity, "" if none */
	size_t id_ns_len;
	const char *id_sa; /* NULL if the identity is not spiffe://td/ns/N/sa/S */
	size_t id_sa_len;
	struct mesh_ip src, dst;
	uint16_t dport;
	const struct authz_request *rq; /* a waypoint's request, or NULL */
};

static bool authz_eval_labels_contain(const struct mesh_labels *l, const struct mesh_label *sel, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool found = false;

		for (size_t j = 0; j < l->n && !found; j++)
			found = l->items[j].key && l->items[j].value &&
				!strcmp(l->items[j].key, sel[i].key) &&
				!strcmp(l->items[j].value, sel[i].value);
		if (!found)
			return false;
	}
	return true;
}

static bool authz_eval_ap_selects(const struct authz_set *set, const struct az_policy *p,
		       const struct authz_workload *w)
{
	switch (p->scope) {
	case AZ_SC_GLOBAL:
	case AZ_SC_MESH:
		return true;
	case AZ_SC_NS:
		return !strcmp(p->ns, w->namespace);
	case AZ_SC_WL:
		return (!strcmp(p->ns, w->namespace) || !strcmp(p->ns, set->root)) &&
		       authz_eval_labels_contain(&w->labels, p->sel, p->n_sel);
	case AZ_SC_GATEWAY:
		return true; /* a waypoint's own set: every request through it */
	case AZ_SC_SERVICE:
		for (size_t i = 0; w->service && i < p->n_targets; i++)
			if (!strcmp(p->targets[i], w->service) && !strcmp(p->ns, w->namespace))
				return true;
		return false;
	case AZ_SC_NONE:
		return false;
	}
	return false;
}

/* PeerAuthentication selection (istiod fetchPeerAuthentications): a
 * selector only selects in its own namespace. */
static bool authz_eval_pa_selects(const struct az_policy *p, const struct authz_workload *w)
{
	switch (p->scope) {
	case AZ_SC_MESH:
	case AZ_SC_GLOBAL:
		return true;
	case AZ_SC_NS:
		return !strcmp(p->ns, w->namespace);
	case AZ_SC_WL:
		return !strcmp(p->ns, w->namespace) && authz_eval_labels_contain(&w->labels, p->sel, p->n_sel);
	case AZ_SC_GATEWAY:
	case AZ_SC_SERVICE:
	case AZ_SC_NONE:
		return false;
	}
	return false;
}

static bool authz_eval_sm_match(const struct az_strmatch *m, const char *s, size_t len)
{
	switch (m->kind) {
	case AZ_SM_EXACT: return len == m->len && !memcmp(s, m->s, len);
	case AZ_SM_PREFIX: return len >= m->len && !memcmp(s, m->s, m->len);
	case AZ_SM_SUFFIX: return len >= m->len && !memcmp(s + len - m->len, m->s, m->len);
	case AZ_SM_PRESENCE: return len > 0;
	}
	return false;
}

/* Host names compare without regard to ASCII case. */
static bool authz_eval_sm_match_ci(const struct az_strmatch *m, const char *s, size_t len)
{
	size_t off = m->kind == AZ_SM_SUFFIX && len >= m->len ? len - m->len : 0;

	if (m->kind == AZ_SM_PRESENCE)
		return len > 0;
	if (len < m->len || (m->kind == AZ_SM_EXACT && len != m->len))
		return false;
	return !strncasecmp(s + off, m->s, m->len);
}

static bool authz_eval_cidr_contains(const struct az_cidr *c, const struct mesh_ip *ip)
{
	const uint8_t *a;
	unsigned full, rem;

	if (c->family != ip->family)
		return false;
	a = ip->family == AF_INET ? (const uint8_t *)&ip->addr.v4 : ip->addr.v6.s6_addr;
	full = c->bits / 8;
	rem = c->bits % 8;
	if (memcmp(a, c->addr, full))
		return false;
	if (rem) {
		uint8_t mask = (uint8_t)(0xffu << (8 - rem));

		if ((a[full] & mask) != (c->addr[full] & mask))
			return false;
	}
	return true;
}

static bool authz_eval_value_hit(enum az_field f, const struct az_flist *l, size_t i, const struct ectx *e)
{
	switch (f) {
	case AZ_F_NS:
		return authz_eval_sm_match(&l->u.s[i], e->id_ns, e->id_ns_len);
	case AZ_F_PR:
		/* an absent identity never matches (ztunnel matches_principal) */
		return e->principal && authz_eval_sm_match(&l->u.s[i], e->principal, e->principal_len);
	case AZ_F_SA:
		return e->id_sa && strlen(l->u.sa[i].ns) == e->id_ns_len &&
		       !memcmp(l->u.sa[i].ns, e->id_ns, e->id_ns_len) &&
		       strlen(l->u.sa[i].sa) == e->id_sa_len &&
		       !memcmp(l->u.sa[i].sa, e->id_sa, e->id_sa_len);
	case AZ_F_SIP:
		return authz_eval_cidr_contains(&l->u.c[i], &e->src);
	case AZ_F_DIP:
		return authz_eval_cidr_contains(&l->u.c[i], &e->dst);
	case AZ_F_DPORT:
		return l->u.port[i] == e->dport;
	case AZ_F_HOST:
		return e->rq && e->rq->host && authz_eval_sm_match_ci(&l->u.s[i], e->rq->host, strlen(e->rq->host));
	case AZ_F_METHOD:
		return e->rq && e->rq->method && authz_eval_sm_match(&l->u.s[i], e->rq->method, strlen(e->rq->method));
	case AZ_F_PATH:
		return e->rq && e->rq->path && authz_eval_sm_match(&l->u.s[i], e->rq->path, strlen(e->rq->path));
	case AZ_F_HDR: {
		size_t vlen = 0;
		const char *v = e->rq && e->rq->header ?
					e->rq->header(e->rq->header_ctx, l->u.h[i].name, &vlen) : NULL;

		return v && (l->u.h[i].m.kind == AZ_SM_PRESENCE || authz_eval_sm_match(&l->u.h[i].m, v, vlen));
	}
	case AZ_F_MAX:
		break;
	}
	return false;
}

static bool authz_eval_list_any(enum az_field f, const struct az_flist *l, const struct ectx *e)
{
	for (size_t i = 0; i < l->n; i++)
		if (authz_eval_value_hit(f, l, i, e))
			return true;
	return false;
}

static bool authz_eval_match_eval(const struct az_match *m, const struct ectx *e)
{
	for (int f = 0; f < AZ_F_MAX; f++) {
		if (m->f[f][0].n && !authz_eval_list_any((enum az_field)f, &m->f[f][0], e))
			return false;
		if (m->f[f][1].n && authz_eval_list_any((enum az_field)f, &m->f[f][1], e))
			return false;
	}
	return true;
}

static bool authz_eval_policy_matches(const struct az_policy *p, const struct ectx *e)
{
	for (size_t r = 0; r < p->n_rules; r++) {
		const struct az_rule *ru = &p->rules[r];
		bool rule_ok = true;

		for (size_t c = 0; c < ru->n && rule_ok; c++) {
			const struct az_clause *cl = &ru->c[c];
			bool ok = cl->n == 0;

			for (size_t m = 0; m < cl->n && !ok; m++)
				ok = !az_match_is_empty(&cl->m[m]) && authz_eval_match_eval(&cl->m[m], e);
			rule_ok = ok;
		}
		if (rule_ok)
			return true;
	}
	return false;
}

static const struct az_policy *authz_eval_oldest(const struct az_policy *cur, const struct az_policy *cand)
{
	/* policies are in key order, so strict "older" keeps the first on a tie */
	if (!cur || strcmp(cand->created, cur->created) < 0)
		return cand;
	return cur;
}

/* The effective PeerAuthentications for w (istiod convertedSelectorPeerAuthentications). */
static void authz_eval_pa_effective(const struct authz_set *set, const struct authz_workload *w,
			 const struct az_policy **mesh, const struct az_policy **ns,
			 const struct az_policy **wl)
{
	*mesh = *ns = *wl = NULL;
	for (size_t i = 0; i < set->n_pa; i++) {
		const struct az_policy *p = &set->pa[i];

		if (p->state != AUTHZ_POLICY_ACTIVE || !authz_eval_pa_selects(p, w))
			continue;
		if (p->scope == AZ_SC_MESH)
			*mesh = authz_eval_oldest(*mesh, p);
		else if (p->scope == AZ_SC_NS)
			*ns = authz_eval_oldest(*ns, p);
		else if (p->scope == AZ_SC_WL)
			*wl = authz_eval_oldest(*wl, p);
	}
}

/* Returns the policy that makes (w, port) STRICT, or NULL. */
static const struct az_policy *authz_eval_pa_strict(const struct authz_set *set, const struct authz_workload *w,
				      uint16_t port)
{
	const struct az_policy *mesh, *ns, *wl, *decider = NULL;
	bool strict = false;

	authz_eval_pa_effective(set, w, &mesh, &ns, &wl);
	if (mesh) {
		strict = mesh->mode == AZ_M_STRICT;
		decider = mesh;
	}
	if (ns && ns->mode != AZ_M_UNSET) {
		strict = ns->mode == AZ_M_STRICT;
		decider = ns;
	}
	if (wl) {
		if (wl->mode != AZ_M_UNSET) {
			strict = wl->mode == AZ_M_STRICT;
			decider = wl;
		}
		for (size_t i = 0; i < wl->n_ports; i++) {
			if (wl->ports[i].port != port || wl->ports[i].mode == AZ_M_UNSET)
				continue;
			strict = wl->ports[i].mode == AZ_M_STRICT;
			decider = wl;
		}
	}
	return strict ? decider : NULL;
}

static void authz_eval_canon_ip(const struct mesh_ip *in, struct mesh_ip *out)
{
	*out = *in;
	if (in->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in->addr.v6)) {
		memset(out, 0, sizeof(*out));
		out->family = AF_INET;
		memcpy(&out->addr.v4, &in->addr.v6.s6_addr[12], 4);
	}
}

/* ztunnel Identity: spiffe://<td>/ns/<ns>/sa/<sa>, exactly five segments. */
static void authz_eval_parse_identity(const char *id, struct ectx *e)
{
	static const char pfx[] = "spiffe://";
	const char *seg[6];
	size_t len[6], n = 0;
	const char *s;

	e->principal = NULL;
	e->principal_len = 0;
	e->id_ns = "";
	e->id_ns_len = 0;
	e->id_sa = NULL;
	e->id_sa_len = 0;
	if (!id || !*id || strncmp(id, pfx, sizeof(pfx) - 1))
		return;
	s = id + sizeof(pfx) - 1;
	e->principal = s;
	e->principal_len = strlen(s);
	for (;;) {
		const char *sl = strchr(s, '/');
		size_t l = sl ? (size_t)(sl - s) : strlen(s);

		if (n == 6)
			return;
		seg[n] = s;
		len[n++] = l;
		if (!sl)
			break;
		s = sl + 1;
	}
	if (n != 5 || !len[0] || len[1] != 2 || memcmp(seg[1], "ns", 2) || !len[2] || len[3] != 2 ||
	    memcmp(seg[3], "sa", 2) || !len[4])
		return;
	e->id_ns = seg[2];
	e->id_ns_len = len[2];
	e->id_sa = seg[4];
	e->id_sa_len = len[4];
}

static int authz_eval_decide(struct authz_decision *out, bool allow, const char *policy, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));

static int authz_eval_decide(struct authz_decision *out, bool allow, const char *policy, const char *fmt, ...)
{
	va_list ap;

	out->allow = allow;
	snprintf(out->policy, sizeof(out->policy), "%s", policy);
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	return allow ? 0 : -EACCES;
}

/* Istio's order after CUSTOM: a DENY policy of w's that matches denies,
 * then an ALLOW policy of w's that matches allows. true with *ret when one
 * decided; *any_deny / *any_allow become true when such policies apply. */
static bool authz_eval_deny_then_allow(const struct authz_set *set, const struct authz_workload *w,
			    const struct ectx *e, struct authz_decision *out, int *ret,
			    bool *any_deny, bool *any_allow)
{
	for (size_t i = 0; i < set->n_ap; i++) {
		const struct az_policy *p = &set->ap[i];

		if (p->state != AUTHZ_POLICY_ACTIVE || p->action != AZ_A_DENY || !authz_eval_ap_selects(set, p, w))
			continue;
		*any_deny = true;
		if (authz_eval_policy_matches(p, e)) {
			*ret = authz_eval_decide(out, false, p->key, "denied by DENY policy %s", p->key);
			return true;
		}
	}
	for (size_t i = 0; i < set->n_ap; i++) {
		const struct az_policy *p = &set->ap[i];

		if (p->state != AUTHZ_POLICY_ACTIVE || p->action != AZ_A_ALLOW || !authz_eval_ap_selects(set, p, w))
			continue;
		*any_allow = true;
		if (authz_eval_policy_matches(p, e)) {
			*ret = authz_eval_decide(out, true, p->key, "allowed by ALLOW policy %s", p->key);
			return true;
		}
	}
	return false;
}

int authz_evaluate(const struct authz_set *set, const struct authz_workload *dst,
		   const struct authz_conn *conn, struct authz_decision *out)
{
	struct authz_workload w;
	const struct az_policy *strict;
	struct ectx e;
	bool any = false, any_allow = false;
	size_t i;
	int ret;

	assert(dst && conn && out);
	memset(out, 0, sizeof(*out));
	w = *dst;
	if (!w.namespace)
		w.namespace = "";
	if (!set)
		return authz_eval_decide(out, true, AUTHZ_NO_POLICIES, "no policies apply");

	/* fail closed: a policy we cannot read might have denied this */
	for (i = 0; i < set->n_ap; i++)
		if (set->ap[i].state == AUTHZ_POLICY_INVALID && authz_eval_ap_selects(set, &set->ap[i], &w))
			return authz_eval_decide(out, false, set->ap[i].key, "policy %s is invalid: %s",
				      set->ap[i].key, set->ap[i].first_error ? set->ap[i].first_error : "?");
	for (i = 0; i < set->n_pa; i++)
		if (set->pa[i].state == AUTHZ_POLICY_INVALID && authz_eval_pa_selects(&set->pa[i], &w))
			return authz_eval_decide(out, false, set->pa[i].key, "policy %s is invalid: %s",
				      set->pa[i].key, set->pa[i].first_error ? set->pa[i].first_error : "?");

	authz_eval_parse_identity(conn->peer_identity, &e);
	authz_eval_canon_ip(&conn->src_ip, &e.src);
	authz_eval_canon_ip(&conn->dst_ip, &e.dst);
	e.dport = conn->dst_port;

	strict = authz_eval_pa_strict(set, &w, conn->dst_port);
	if (strict) {
		any = true;
		if (!conn->peer_identity || !*conn->peer_identity)
			return authz_eval_decide(out, false, strict->key,
				      "PeerAuthentication %s requires mTLS (STRICT) and the connection has no peer identity",
				      strict->key);
	}
	if (authz_eval_deny_then_allow(set, &w, &e, out, &ret, &any, &any_allow))
		return ret;
	if (!any_allow)
		return any ? authz_eval_decide(out, true, AUTHZ_NO_ALLOW_POLICY,
				    "no DENY policy matched and no ALLOW policy applies") :
			     authz_eval_decide(out, true, AUTHZ_NO_POLICIES, "no policies apply");
	return authz_eval_decide(out, false, AUTHZ_NO_ALLOW_MATCHED,
		      "ALLOW policies apply to %s/%s but none matched", w.namespace,
		      w.name ? w.name : "");
}

/* ---- listing ---- */

int authz_evaluate_request(const struct authz_set *set, const struct authz_request *rq,
			   struct authz_decision *out)
{
	struct authz_workload w = { .namespace = rq->svc_namespace ? rq->svc_namespace : "",
				    .service = rq->svc_name };
	struct ectx e;
	bool any_deny = false, any_allow = false;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!set || !set->n_ap)
		return authz_eval_decide(out, true, AUTHZ_NO_POLICIES, "no policies apply");
	for (i = 0; i < set->n_ap; i++)
		if (set->ap[i].state == AUTHZ_POLICY_INVALID && authz_eval_ap_selects(set, &set->ap[i], &w))
			return authz_eval_decide(out, false, set->ap[i].key, "policy %s is invalid: %s",
				      set->ap[i].key, set->ap[i].first_error ? set->ap[i].first_error : "?");
	authz_eval_parse_identity(rq->conn.peer_identity, &e);
	authz_eval_canon_ip(&rq->conn.src_ip, &e.src);
	authz_eval_canon_ip(&rq->conn.dst_ip, &e.dst);
	e.dport = rq->conn.dst_port;
	e.rq = rq;
	/* Istio's order: (CUSTOM,) DENY, ALLOW; AUDIT only marks */
	for (i = 0; i < set->n_ap; i++) {
		const struct az_policy *p = &set->ap[i];

		if (p->state == AUTHZ_POLICY_ACTIVE && p->action == AZ_A_AUDIT &&
		    authz_eval_ap_selects(set, p, &w) && authz_eval_policy_matches(p, &e) && !out->audit[0])
			snprintf(out->audit, sizeof(out->audit), "%s", p->key);
	}
	if (authz_eval_deny_then_allow(set, &w, &e, out, &ret, &any_deny, &any_allow))
		return ret;
	if (!any_allow)
		return authz_eval_decide(out, true, AUTHZ_NO_ALLOW_POLICY, "no DENY policy matched and no ALLOW policy applies");
	return authz_eval_decide(out, false, AUTHZ_NO_ALLOW_MATCHED, "ALLOW policies apply but none matched");
}

static const char *authz_eval_scope_name(const struct az_policy *p)
{
	switch (p->scope) {
	case AZ_SC_GLOBAL: return "global";
	case AZ_SC_NS: return "namespace";
	case AZ_SC_WL: return "workload";
	case AZ_SC_MESH: return "mesh";
	case AZ_SC_GATEWAY: return "gateway";
	case AZ_SC_SERVICE: return "service";
	case AZ_SC_NONE: return "none";
	}
	return "?";
}

static void authz_eval_emit(const struct az_policy *p, authz_policy_cb cb, void *ctx)
{
	struct authz_policy_info info = {
		.kind = p->kind,
		.namespace = p->ns,
		.name = p->name,
		.key = p->key,
		.scope = authz_eval_scope_name(p),
		.action = p->action_str,
		.state = p->state,
		.msgs = p->msgs,
		.n_msgs = p->n_msgs,
	};

	cb(&info, ctx);
}

void authz_policies_foreach(const struct authz_set *set, authz_policy_cb cb, void *ctx)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n_ap; i++)
		authz_eval_emit(&set->ap[i], cb, ctx);
	for (size_t i = 0; i < set->n_pa; i++)
		authz_eval_emit(&set->pa[i], cb, ctx);
}

void authz_policies_selecting(const struct authz_set *set, const struct authz_workload *w,
			      authz_policy_cb cb, void *ctx)
{
	const struct az_policy *eff[3];
	struct authz_workload ww;

	if (!set || !w)
		return;
	ww = *w;
	if (!ww.namespace)
		ww.namespace = "";
	for (size_t i = 0; i < set->n_ap; i++)
		if (set->ap[i].state != AUTHZ_POLICY_IGNORED && authz_eval_ap_selects(set, &set->ap[i], &ww))
			authz_eval_emit(&set->ap[i], cb, ctx);
	authz_eval_pa_effective(set, &ww, &eff[0], &eff[1], &eff[2]);
	for (size_t i = 0; i < 3; i++)
		if (eff[i])
			authz_eval_emit(eff[i], cb, ctx);
	for (size_t i = 0; i < set->n_pa; i++)
		if (set->pa[i].state == AUTHZ_POLICY_INVALID && authz_eval_pa_selects(&set->pa[i], &ww))
			authz_eval_emit(&set->pa[i], cb, ctx);
}

const char *authz_state_name(enum authz_policy_state s)
{
	switch (s) {
	case AUTHZ_POLICY_ACTIVE: return "active";
	case AUTHZ_POLICY_IGNORED: return "ignored";
	case AUTHZ_POLICY_INVALID: return "invalid";
	}
	return "?";
}

const char *authz_msg_level_name(enum authz_msg_level l)
{
	switch (l) {
	case AUTHZ_MSG_WARNING: return "warning";
	case AUTHZ_MSG_ERROR: return "error";
	case AUTHZ_MSG_INFO: return "info";
	}
	return "?";
}
