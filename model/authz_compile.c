/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine's compiler (contract and semantics in model/authz.h;
 * the compiled form in authz_set.h; the evaluator in authz_eval.c).
 *
 * Compilation mirrors istiod's ambient conversion (authorization.go
 * handleRule), so that the same objects give the same decisions as with
 * ztunnel. Everything a set owns (policies, rules, strings, messages)
 * lives in one arena, freed at once by authz_set_free(): the compiled
 * structure is never modified after authz_compile() returns.
 */
#include "model/authz.h"
#include "model/authz_set.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- compile context ---- */

struct pctx {
	struct arena *ar;
	struct az_policy *p;
	const char *root;
	/* L7 attribute names found, for the warning (unique, in order seen) */
	const char **l7;
	size_t n_l7, cap_l7;
	/* a waypoint's set: HTTP attributes and targetRefs are compiled */
	bool wp;
	const char *gw_ns, *gw_name;
	const char *hdr; /* AZ_T_HDR: the header name being compiled */
};

static void __attribute__((format(printf, 3, 4)))
authz_compile_addmsg(struct pctx *pc, enum authz_msg_level level, const char *fmt, ...)
{
	struct az_policy *p = pc->p;
	char buf[768];
	va_list ap;
	char *s;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s = arena_strdup(pc->ar, buf);
	if (!s)
		return;
	if (p->n_msgs == p->cap_msgs) {
		size_t cap = p->cap_msgs ? p->cap_msgs * 2 : 4;
		struct authz_msg *m = arena_calloc(pc->ar, cap, sizeof(*m));

		if (!m)
			return;
		if (p->n_msgs)
			memcpy(m, p->msgs, p->n_msgs * sizeof(*m));
		p->msgs = m;
		p->cap_msgs = cap;
	}
	p->msgs[p->n_msgs].level = level;
	p->msgs[p->n_msgs].text = s;
	p->n_msgs++;
	if (level == AUTHZ_MSG_ERROR) {
		p->state = AUTHZ_POLICY_INVALID;
		if (!p->first_error)
			p->first_error = s;
	}
}

static void authz_compile_note_l7(struct pctx *pc, const char *name)
{
	for (size_t i = 0; i < pc->n_l7; i++)
		if (!strcmp(pc->l7[i], name))
			return;
	if (pc->n_l7 == pc->cap_l7) {
		size_t cap = pc->cap_l7 ? pc->cap_l7 * 2 : 8;
		const char **v = arena_calloc(pc->ar, cap, sizeof(*v));

		if (!v)
			return;
		if (pc->n_l7)
			memcpy(v, pc->l7, pc->n_l7 * sizeof(*v));
		pc->l7 = v;
		pc->cap_l7 = cap;
	}
	pc->l7[pc->n_l7++] = arena_strdup(pc->ar, name);
	if (!pc->l7[pc->n_l7 - 1])
		pc->n_l7--;
}

/* snprintf for message paths: truncation only shortens a message. */
static void __attribute__((format(printf, 3, 4)))
authz_compile_pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static const char *authz_compile_jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* ---- value parsers ---- */

/* Decimal 1..65535, digits only (Istio ValidatePorts). */
static int authz_compile_parse_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i;

	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (!i || v == 0 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* "a.b.c.d", "a.b.c.d/n", "v6", "v6/n"; a bare IP is /32 or /128. */
static int authz_compile_parse_cidr(const char *s, struct az_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned bits = 0, maxbits;

	memset(c, 0, sizeof(*c));
	if (!alen || alen >= INET6_ADDRSTRLEN)
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else {
		return -EINVAL;
	}
	if (!slash) {
		c->bits = maxbits;
		return 0;
	}
	const char *b = slash + 1;

	if (!*b || strlen(b) > 3)
		return -EINVAL;
	for (; *b; b++) {
		if (*b < '0' || *b > '9')
			return -EINVAL;
		bits = bits * 10 + (unsigned)(*b - '0');
	}
	if (bits > maxbits)
		return -EINVAL;
	c->bits = bits;
	return 0;
}

/* istiod stringToMatch: "*" presence, "*x" suffix, "x*" prefix, else exact. */
static void authz_compile_make_strmatch(struct arena *ar, const char *v, struct az_strmatch *m)
{
	size_t len = strlen(v);

	if (!strcmp(v, "*")) {
		m->kind = AZ_SM_PRESENCE;
		m->s = "";
		m->len = 0;
	} else if (v[0] == '*') {
		m->kind = AZ_SM_SUFFIX;
		m->s = arena_strdup(ar, v + 1);
		m->len = len - 1;
	} else if (len && v[len - 1] == '*') {
		m->kind = AZ_SM_PREFIX;
		m->s = arena_strndup(ar, v, len - 1);
		m->len = len - 1;
	} else {
		m->kind = AZ_SM_EXACT;
		m->s = arena_strdup(ar, v);
		m->len = len;
	}
}

/*
 * Reads a list of non-empty strings at obj[key] (path names it in
 * messages) and converts it by type into *out (which may be NULL for L7
 * types). Absent or null: empty list. Problems are policy errors.
 */
static void authz_compile_conv_list(struct pctx *pc, const json_t *arr, enum az_vtype type, struct az_flist *out,
		      const char *path)
{
	size_t n, i, k = 0;
	const json_t *v;

	if (!arr || json_is_null(arr))
		return;
	if (!json_is_array(arr)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be a list of strings, found %s", path, authz_compile_jtype(arr));
		return;
	}
	n = json_array_size(arr);
	if (!n)
		return;
	if (out) {
		size_t sz = type == AZ_T_STR ? sizeof(struct az_strmatch) :
			    type == AZ_T_SA  ? sizeof(struct az_samatch) :
			    type == AZ_T_IP  ? sizeof(struct az_cidr) :
			    type == AZ_T_HDR ? sizeof(struct az_hdrmatch) : sizeof(uint16_t);
		void *mem = arena_calloc(pc->ar, n, sz);

		if (!mem)
			return;
		out->u.s = mem;
	}
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		if (!json_is_string(v)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s[%zu]: must be a string, found %s", path, i,
			       authz_compile_jtype(v));
			continue;
		}
		if (!*s) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s[%zu]: empty string is not allowed", path, i);
			continue;
		}
		switch (type) {
		case AZ_T_STR:
			authz_compile_make_strmatch(pc->ar, s, &out->u.s[k++]);
			break;
		case AZ_T_SA: {
			const char *sl = strchr(s, '/');
			struct az_samatch *m = &out->u.sa[k];

			if (sl && (sl == s || !sl[1] || strchr(sl + 1, '/'))) {
				authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s[%zu]: \"%s\" is not a service account: use \"sa\" or \"namespace/sa\"",
				       path, i, s);
				continue;
			}
			if (sl) {
				m->ns = arena_strndup(pc->ar, s, (size_t)(sl - s));
				m->sa = arena_strdup(pc->ar, sl + 1);
			} else {
				/* bare name: the policy's namespace (istiod) */
				m->ns = pc->p->ns;
				m->sa = arena_strdup(pc->ar, s);
			}
			k++;
			break;
		}
		case AZ_T_IP:
		case AZ_T_L7IP: {
			struct az_cidr c;

			if (authz_compile_parse_cidr(s, &c)) {
				authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s[%zu]: \"%s\" is not an IP address or CIDR (e.g. 10.0.0.0/8, fd00::/8, 10.1.2.3)",
				       path, i, s);
				continue;
			}
			if (type == AZ_T_IP)
				out->u.c[k++] = c;
			break;
		}
		case AZ_T_PORT:
			if (authz_compile_parse_port(s, &out->u.port[k])) {
				authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s[%zu]: \"%s\" is not a port: use a number 1..65535 as a string",
				       path, i, s);
				continue;
			}
			k++;
			break;
		case AZ_T_HDR:
			out->u.h[k].name = pc->hdr;
			authz_compile_make_strmatch(pc->ar, s, &out->u.h[k].m);
			k++;
			break;
		case AZ_T_L7:
			break;
		}
	}
	if (out)
		out->n = k;
}

/* ---- rules ---- */

struct fspec {
	const char *name;
	enum az_field field;
	int neg;
	enum az_vtype type;
};

static const struct fspec authz_compile_source_fields[] = {
	{ "principals", AZ_F_PR, 0, AZ_T_STR },
	{ "notPrincipals", AZ_F_PR, 1, AZ_T_STR },
	{ "namespaces", AZ_F_NS, 0, AZ_T_STR },
	{ "notNamespaces", AZ_F_NS, 1, AZ_T_STR },
	{ "serviceAccounts", AZ_F_SA, 0, AZ_T_SA },
	{ "notServiceAccounts", AZ_F_SA, 1, AZ_T_SA },
	{ "ipBlocks", AZ_F_SIP, 0, AZ_T_IP },
	{ "notIpBlocks", AZ_F_SIP, 1, AZ_T_IP },
	{ "requestPrincipals", AZ_F_MAX, 0, AZ_T_L7 },
	{ "notRequestPrincipals", AZ_F_MAX, 0, AZ_T_L7 },
	{ "remoteIpBlocks", AZ_F_MAX, 0, AZ_T_L7IP },
	{ "notRemoteIpBlocks", AZ_F_MAX, 0, AZ_T_L7IP },
	{ "trustDomains", AZ_F_MAX, 0, AZ_T_L7 },
	{ "notTrustDomains", AZ_F_MAX, 0, AZ_T_L7 },
};

static const struct fspec authz_compile_operation_fields[] = {
	{ "ports", AZ_F_DPORT, 0, AZ_T_PORT },
	{ "notPorts", AZ_F_DPORT, 1, AZ_T_PORT },
	/* HTTP: compiled at a waypoint, dropped by a tunnel */
	{ "hosts", AZ_F_HOST, 0, AZ_T_L7 },
	{ "notHosts", AZ_F_HOST, 1, AZ_T_L7 },
	{ "methods", AZ_F_METHOD, 0, AZ_T_L7 },
	{ "notMethods", AZ_F_METHOD, 1, AZ_T_L7 },
	{ "paths", AZ_F_PATH, 0, AZ_T_L7 },
	{ "notPaths", AZ_F_PATH, 1, AZ_T_L7 },
};

/* One from[].source or to[].operation entry -> one match. Returns whether
 * any L7 field was present. */
static bool authz_compile_conv_entry(struct pctx *pc, const json_t *obj, const struct fspec *specs,
		       size_t n_specs, struct az_match *m, const char *path)
{
	const char *k;
	const json_t *v;
	bool l7 = false, any = false;
	char sub[320];

	json_object_foreach((json_t *)obj, k, v) {
		const struct fspec *fs = NULL;

		for (size_t i = 0; i < n_specs; i++)
			if (!strcmp(specs[i].name, k))
				fs = &specs[i];
		if (!fs) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
			continue;
		}
		authz_compile_pathf(sub, sizeof(sub), "%s.%s", path, k);
		if (pc->wp && fs->type == AZ_T_L7 && fs->field != AZ_F_MAX) {
			authz_compile_conv_list(pc, v, AZ_T_STR, &m->f[fs->field][fs->neg], sub);
			if (json_array_size(v))
				any = true;
		} else if (fs->type == AZ_T_L7 || fs->type == AZ_T_L7IP) {
			authz_compile_conv_list(pc, v, fs->type, NULL, sub);
			if (json_array_size(v)) {
				l7 = any = true;
				authz_compile_note_l7(pc, k);
			}
		} else {
			authz_compile_conv_list(pc, v, fs->type, &m->f[fs->field][fs->neg], sub);
			if (json_array_size(v))
				any = true;
		}
	}
	if (!any)
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must not be empty", path);
	return l7;
}

static const struct {
	const char *key;
	enum az_field field;
	enum az_vtype type;
} authz_compile_when_keys[] = {
	{ "source.ip", AZ_F_SIP, AZ_T_IP },
	{ "source.namespace", AZ_F_NS, AZ_T_STR },
	{ "source.principal", AZ_F_PR, AZ_T_STR },
	{ "destination.ip", AZ_F_DIP, AZ_T_IP },
	{ "destination.port", AZ_F_DPORT, AZ_T_PORT },
};

/* A clause of one match per element of list (from[] or to[]). */
static bool authz_compile_conv_entries(struct pctx *pc, const json_t *list, const char *inner,
			 const struct fspec *specs, size_t n_specs, struct az_clause *cl,
			 const char *path)
{
	size_t i, n = json_array_size(list);
	const json_t *e;
	bool l7 = false;
	char sub[320];

	cl->m = arena_calloc(pc->ar, n, sizeof(*cl->m));
	if (!cl->m)
		return false;
	cl->n = n;
	json_array_foreach(list, i, e) {
		const json_t *o;
		const char *k;
		const json_t *v;

		authz_compile_pathf(sub, sizeof(sub), "%s[%zu]", path, i);
		if (!json_is_object(e)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", sub, authz_compile_jtype(e));
			continue;
		}
		json_object_foreach((json_t *)e, k, v)
			if (strcmp(k, inner))
				authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", sub, k);
		o = json_object_get(e, inner);
		authz_compile_pathf(sub, sizeof(sub), "%s[%zu].%s", path, i, inner);
		if (!json_is_object(o)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", sub,
			       o ? authz_compile_jtype(o) : "nothing");
			continue;
		}
		l7 |= authz_compile_conv_entry(pc, o, specs, n_specs, &cl->m[i], sub);
		if (!strcmp(inner, "source")) {
			const struct az_match *m = &cl->m[i];

			if ((m->f[AZ_F_PR][0].n || m->f[AZ_F_PR][1].n || m->f[AZ_F_NS][0].n ||
			     m->f[AZ_F_NS][1].n) &&
			    (m->f[AZ_F_SA][0].n || m->f[AZ_F_SA][1].n))
				authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
				       "%s: cannot set serviceAccounts with namespaces or principals", sub);
		}
	}
	return l7;
}

static bool authz_compile_conv_when(struct pctx *pc, const json_t *c, struct az_clause *cl, const char *path)
{
	const json_t *key, *vals, *nvals;
	const char *k, *ks;
	const json_t *v;
	char sub[320];
	bool l7 = false;

	cl->m = arena_calloc(pc->ar, 1, sizeof(*cl->m));
	if (!cl->m)
		return false;
	cl->n = 1;
	if (!json_is_object(c)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", path, authz_compile_jtype(c));
		return false;
	}
	json_object_foreach((json_t *)c, k, v)
		if (strcmp(k, "key") && strcmp(k, "values") && strcmp(k, "notValues"))
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
	key = json_object_get(c, "key");
	vals = json_object_get(c, "values");
	nvals = json_object_get(c, "notValues");
	ks = json_string_value(key);
	if (!ks || !*ks) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s.key: must be a non-empty string", path);
		return false;
	}
	if (!json_array_size(vals) && !json_array_size(nvals) &&
	    (!vals || json_is_array(vals) || json_is_null(vals)) &&
	    (!nvals || json_is_array(nvals) || json_is_null(nvals)))
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: at least one of values or notValues must be set for key %s",
		       path, ks);
	for (size_t i = 0; i < sizeof(authz_compile_when_keys) / sizeof(authz_compile_when_keys[0]); i++) {
		if (strcmp(authz_compile_when_keys[i].key, ks))
			continue;
		authz_compile_pathf(sub, sizeof(sub), "%s.values", path);
		authz_compile_conv_list(pc, vals, authz_compile_when_keys[i].type, &cl->m[0].f[authz_compile_when_keys[i].field][0], sub);
		authz_compile_pathf(sub, sizeof(sub), "%s.notValues", path);
		authz_compile_conv_list(pc, nvals, authz_compile_when_keys[i].type, &cl->m[0].f[authz_compile_when_keys[i].field][1], sub);
		return false;
	}
	if (pc->wp && !strncmp(ks, "request.headers[", 16) && strlen(ks) > 17 &&
	    ks[strlen(ks) - 1] == ']') {
		char *name = arena_strndup(pc->ar, ks + 16, strlen(ks) - 17);

		for (char *q = name; q && *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		pc->hdr = name;
		authz_compile_pathf(sub, sizeof(sub), "%s.values", path);
		authz_compile_conv_list(pc, vals, AZ_T_HDR, &cl->m[0].f[AZ_F_HDR][0], sub);
		authz_compile_pathf(sub, sizeof(sub), "%s.notValues", path);
		authz_compile_conv_list(pc, nvals, AZ_T_HDR, &cl->m[0].f[AZ_F_HDR][1], sub);
		return false;
	}
	/* any other key is an HTTP attribute: checked for shape, then an empty match */
	authz_compile_pathf(sub, sizeof(sub), "%s.values", path);
	authz_compile_conv_list(pc, vals, AZ_T_L7, NULL, sub);
	authz_compile_pathf(sub, sizeof(sub), "%s.notValues", path);
	authz_compile_conv_list(pc, nvals, AZ_T_L7, NULL, sub);
	authz_compile_note_l7(pc, ks);
	l7 = true;
	return l7;
}

/* istiod handleRule. Returns false when the rule is dropped (ALLOW with L7). */
static bool authz_compile_conv_rule(struct pctx *pc, const json_t *r, struct az_rule *out, const char *path)
{
	const json_t *from, *to, *when, *v;
	const char *k;
	size_t n = 0, i;
	bool l7 = false;
	char sub[320];

	if (!json_is_object(r)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", path, authz_compile_jtype(r));
		return false;
	}
	json_object_foreach((json_t *)r, k, v)
		if (strcmp(k, "from") && strcmp(k, "to") && strcmp(k, "when"))
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
	from = json_object_get(r, "from");
	to = json_object_get(r, "to");
	when = json_object_get(r, "when");
	if (json_is_null(from))
		from = NULL;
	if (json_is_null(to))
		to = NULL;
	if (json_is_null(when))
		when = NULL;
	if (from && (!json_is_array(from) || !json_array_size(from))) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s.from: must be a non-empty list, found %s", path,
		       json_is_array(from) ? "an empty list" : authz_compile_jtype(from));
		from = NULL;
	}
	if (to && (!json_is_array(to) || !json_array_size(to))) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s.to: must be a non-empty list, found %s", path,
		       json_is_array(to) ? "an empty list" : authz_compile_jtype(to));
		to = NULL;
	}
	if (when && !json_is_array(when)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s.when: must be a list, found %s", path, authz_compile_jtype(when));
		when = NULL;
	}
	out->c = arena_calloc(pc->ar, 2 + json_array_size(when), sizeof(*out->c));
	if (!out->c)
		return false;
	if (to) {
		authz_compile_pathf(sub, sizeof(sub), "%s.to", path);
		l7 |= authz_compile_conv_entries(pc, to, "operation", authz_compile_operation_fields,
				   sizeof(authz_compile_operation_fields) / sizeof(authz_compile_operation_fields[0]), &out->c[n++],
				   sub);
	}
	if (from) {
		authz_compile_pathf(sub, sizeof(sub), "%s.from", path);
		l7 |= authz_compile_conv_entries(pc, from, "source", authz_compile_source_fields,
				   sizeof(authz_compile_source_fields) / sizeof(authz_compile_source_fields[0]), &out->c[n++], sub);
	}
	json_array_foreach(when, i, v) {
		authz_compile_pathf(sub, sizeof(sub), "%s.when[%zu]", path, i);
		l7 |= authz_compile_conv_when(pc, v, &out->c[n++], sub);
	}
	out->n = n;
	if (pc->p->action == AZ_A_ALLOW && l7)
		return false; /* L7 rules never match in ALLOW (fail safe) */
	return true;
}

/* Istio hasEffectiveRules: can any rule fire at all? */
static bool authz_compile_has_effective_rules(const struct az_policy *p)
{
	for (size_t r = 0; r < p->n_rules; r++) {
		bool eff = true;

		for (size_t c = 0; c < p->rules[r].n && eff; c++) {
			const struct az_clause *cl = &p->rules[r].c[c];
			bool nonempty = false;

			for (size_t m = 0; m < cl->n; m++)
				nonempty |= !az_match_is_empty(&cl->m[m]);
			eff = nonempty;
		}
		if (eff)
			return true;
	}
	return false;
}

/* ---- objects ---- */

/* metadata.namespace/name/creationTimestamp; *spec (NULL when absent, which
 * reads as {}). Returns 0, or -EINVAL when the object is unusable. */
static int authz_compile_conv_meta(struct pctx *pc, const json_t *o, size_t idx, const char *kind,
		     const json_t **spec)
{
	struct az_policy *p = pc->p;
	const json_t *meta = json_object_get(o, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *ts = json_string_value(json_object_get(meta, "creationTimestamp"));
	char key[320];

	p->ns = arena_strdup(pc->ar, ns && *ns ? ns : "default");
	if (name && *name) {
		p->name = arena_strdup(pc->ar, name);
	} else {
		authz_compile_pathf(key, sizeof(key), "(unnamed %s #%zu)", kind, idx + 1);
		p->name = arena_strdup(pc->ar, key);
	}
	authz_compile_pathf(key, sizeof(key), "%s/%s", p->ns ? p->ns : "", p->name ? p->name : "");
	p->key = arena_strdup(pc->ar, key);
	p->created = arena_strdup(pc->ar, ts ? ts : "");
	if (!p->action_str) /* AuthorizationPolicy set its default (ALLOW) already */
		p->action_str = "";
	*spec = NULL;
	if (!p->ns || !p->name || !p->key || !p->created)
		return -EINVAL;
	if (!json_is_object(o)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s #%zu: must be an object, found %s", kind, idx + 1,
		       authz_compile_jtype(o));
		return -EINVAL;
	}
	if (!json_is_object(meta)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "metadata: must be an object");
		return -EINVAL;
	}
	if (!name || !*name)
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "metadata.name: must be a non-empty string");
	if (json_object_get(meta, "namespace") && !ns)
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "metadata.namespace: must be a string");

	const json_t *sp = json_object_get(o, "spec");

	if (!sp || json_is_null(sp))
		return 0;
	if (!json_is_object(sp)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec: must be an object, found %s", authz_compile_jtype(sp));
		return -EINVAL;
	}
	*spec = sp;
	return 0;
}

/*
 * spec.selector. Returns 1 when a selector with labels was read, 0 when
 * there is none (absent or null), 2 when present but without labels, -1
 * when unreadable (error recorded).
 */
static int authz_compile_conv_selector(struct pctx *pc, const json_t *spec)
{
	struct az_policy *p = pc->p;
	const json_t *sel = json_object_get(spec, "selector"), *ml, *v;
	const char *k;
	size_t n = 0;
	int bad = 0;

	if (!sel || json_is_null(sel))
		return 0;
	if (!json_is_object(sel)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.selector: must be an object, found %s", authz_compile_jtype(sel));
		return -1;
	}
	json_object_foreach((json_t *)sel, k, v)
		if (strcmp(k, "matchLabels")) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.selector: unknown field \"%s\"", k);
			bad = 1;
		}
	ml = json_object_get(sel, "matchLabels");
	if (ml && !json_is_null(ml) && !json_is_object(ml)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.selector.matchLabels: must be a map of strings, found %s",
		       authz_compile_jtype(ml));
		return -1;
	}
	if (bad)
		return -1;
	if (!json_object_size(ml))
		return 2;
	p->sel = arena_calloc(pc->ar, json_object_size(ml), sizeof(*p->sel));
	if (!p->sel)
		return -1;
	json_object_foreach((json_t *)ml, k, v) {
		if (!json_is_string(v)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.selector.matchLabels.%s: must be a string, found %s (quote it)", k,
			       authz_compile_jtype(v));
			bad = 1;
			continue;
		}
		p->sel[n].key = arena_strdup(pc->ar, k);
		p->sel[n].value = arena_strdup(pc->ar, json_string_value(v));
		n++;
	}
	p->n_sel = n;
	return bad ? -1 : 1;
}

/* Go strconv.ParseBool. */
static int authz_compile_parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < 6; i++) {
		if (!strcmp(s, t[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, f[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static bool authz_compile_has_target_ref(const json_t *spec)
{
	const json_t *tr = json_object_get(spec, "targetRef");
	const json_t *trs = json_object_get(spec, "targetRefs");

	return (tr && !json_is_null(tr)) || json_array_size(trs) ||
	       (trs && !json_is_null(trs) && !json_is_array(trs));
}

/* A waypoint's targetRefs: a Gateway (this waypoint, in the policy's
 * namespace) or Services of the policy's namespace. A policy for another
 * Gateway is ignored; a target of another kind, or unreadable, makes the
 * policy invalid, scoped to the whole waypoint (fail closed). Returns 1
 * when the policy is ignored. */
static int authz_compile_conv_targets(struct pctx *pc, const json_t *spec)
{
	struct az_policy *p = pc->p;
	const json_t *one = json_object_get(spec, "targetRef"), *list = json_object_get(spec, "targetRefs");
	const json_t *t;
	size_t i, n = json_array_size(list) + (one && !json_is_null(one));
	bool gw = false, other_gw = false;

	p->scope = AZ_SC_GATEWAY; /* until read: an error fails the whole waypoint closed */
	if (list && !json_is_null(list) && !json_is_array(list)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.targetRefs: must be a list, found %s", authz_compile_jtype(list));
		return 0;
	}
	p->targets = arena_calloc(pc->ar, n + 1, sizeof(*p->targets));
	if (!p->targets)
		return 0;
	for (i = 0; i < n; i++) {
		const char *kind, *name, *group, *ns, *k;
		const json_t *v;

		t = i < json_array_size(list) ? json_array_get(list, i) : one;
		if (!json_is_object(t)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.targetRefs[%zu]: must be an object, found %s", i,
			       authz_compile_jtype(t));
			continue;
		}
		json_object_foreach((json_t *)t, k, v)
			if (strcmp(k, "group") && strcmp(k, "kind") && strcmp(k, "name") &&
			    strcmp(k, "namespace"))
				authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.targetRefs[%zu]: unknown field \"%s\"", i, k);
		kind = json_string_value(json_object_get(t, "kind"));
		name = json_string_value(json_object_get(t, "name"));
		group = json_string_value(json_object_get(t, "group"));
		ns = json_string_value(json_object_get(t, "namespace"));
		if (!kind || !name || !*name) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.targetRefs[%zu]: kind and name are required", i);
			continue;
		}
		if (ns && *ns && strcmp(ns, p->ns)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.targetRefs[%zu]: namespace %s: a target must be in the policy's namespace %s",
			       i, ns, p->ns);
			continue;
		}
		if (!strcmp(kind, "Gateway") && (!group || !strcmp(group, "gateway.networking.k8s.io"))) {
			if (!strcmp(name, pc->gw_name) && !strcmp(p->ns, pc->gw_ns))
				gw = true;
			else
				other_gw = true;
		} else if (!strcmp(kind, "Service") && (!group || !*group)) {
			p->targets[p->n_targets++] = arena_strdup(pc->ar, name);
		} else {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.targetRefs[%zu]: kind %s%s%s: a waypoint takes Gateway or Service", i,
			       group && *group ? group : "", group && *group ? "/" : "", kind);
		}
	}
	if (p->state == AUTHZ_POLICY_INVALID)
		return 0;
	if (gw)
		return 0; /* the whole waypoint (its Service targets are then moot) */
	if (p->n_targets) {
		p->scope = AZ_SC_SERVICE;
		return 0;
	}
	p->scope = AZ_SC_NONE;
	p->state = AUTHZ_POLICY_IGNORED;
	authz_compile_addmsg(pc, AUTHZ_MSG_INFO, "%s", other_gw ? "targets another Gateway" : "targets nothing here");
	return 1;
}

static void authz_compile_conv_authz(struct pctx *pc, const json_t *o, size_t idx)
{
	struct az_policy *p = pc->p;
	const json_t *spec, *act, *rules, *r, *v;
	const char *k, *dry;
	size_t i, n = 0;
	int sel;
	char path[64];

	p->kind = AUTHZ_KIND_AUTHORIZATION;
	p->state = AUTHZ_POLICY_ACTIVE;
	p->action = AZ_A_ALLOW;
	p->action_str = "ALLOW";
	if (authz_compile_conv_meta(pc, o, idx, "AuthorizationPolicy", &spec)) {
		p->scope = p->ns && !strcmp(p->ns, pc->root) ? AZ_SC_GLOBAL : AZ_SC_NS;
		return;
	}
	json_object_foreach((json_t *)spec, k, v)
		if (strcmp(k, "selector") && strcmp(k, "action") && strcmp(k, "rules") &&
		    strcmp(k, "provider") && strcmp(k, "targetRef") && strcmp(k, "targetRefs"))
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec: unknown field \"%s\"", k);

	sel = authz_compile_conv_selector(pc, spec);
	if (sel == 1)
		p->scope = AZ_SC_WL;
	else if (sel == 2)
		p->scope = AZ_SC_NONE;
	else
		p->scope = !strcmp(p->ns, pc->root) ? AZ_SC_GLOBAL : AZ_SC_NS;

	/* The three reasons istiod sends nothing to ztunnel, in its order. */
	dry = json_string_value(json_object_get(
		json_object_get(json_object_get(o, "metadata"), "annotations"), "istio.io/dry-run"));
	if (dry) {
		bool b = false;

		if (authz_compile_parse_bool(dry, &b)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_WARNING,
			       "annotation istio.io/dry-run: cannot parse \"%s\" as a boolean; policy enforced",
			       dry);
		} else if (b) {
			p->state = AUTHZ_POLICY_IGNORED;
			authz_compile_addmsg(pc, AUTHZ_MSG_INFO,
			       "dry-run policies are not supported by the tunnel; policy ignored");
			return;
		}
	}
	if (pc->wp) {
		if (!authz_compile_has_target_ref(spec)) {
			p->scope = AZ_SC_NONE;
			p->state = AUTHZ_POLICY_IGNORED;
			authz_compile_addmsg(pc, AUTHZ_MSG_INFO,
			       "no targetRefs: enforced by the tunnels of the workloads it selects, not by the waypoint");
			return;
		}
		if (authz_compile_conv_targets(pc, spec))
			return;
	} else if (authz_compile_has_target_ref(spec)) {
		p->state = AUTHZ_POLICY_IGNORED;
		authz_compile_addmsg(pc, AUTHZ_MSG_INFO,
		       "has targetRef/targetRefs: it is for a waypoint or gateway, not enforced by the tunnel");
		return;
	}
	act = json_object_get(spec, "action");
	if (act && !json_is_null(act)) {
		const char *a = json_string_value(act);

		if (!a) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.action: must be a string, found %s", authz_compile_jtype(act));
			p->action_str = "?";
		} else if (!strcmp(a, "ALLOW") || !*a) {
			/* default */
		} else if (!strcmp(a, "DENY")) {
			p->action = AZ_A_DENY;
			p->action_str = "DENY";
		} else if (pc->wp && !strcmp(a, "AUDIT")) {
			/* a waypoint logs what an AUDIT policy matches; it decides nothing */
			p->action = AZ_A_AUDIT;
			p->action_str = "AUDIT";
		} else if (!strcmp(a, "AUDIT") || !strcmp(a, "CUSTOM")) {
			p->action_str = !strcmp(a, "AUDIT") ? "AUDIT" : "CUSTOM";
			p->state = AUTHZ_POLICY_IGNORED;
			authz_compile_addmsg(pc, AUTHZ_MSG_INFO,
			       "the tunnel does not support the %s action; policy ignored", a);
			return;
		} else {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.action: unknown action \"%s\" (use ALLOW or DENY)", a);
			p->action_str = "?";
		}
	}
	if (json_object_get(spec, "provider"))
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.provider: only allowed with action CUSTOM");

	rules = json_object_get(spec, "rules");
	if (rules && !json_is_null(rules) && !json_is_array(rules)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.rules: must be a list, found %s", authz_compile_jtype(rules));
		return;
	}
	if (json_array_size(rules)) {
		p->rules = arena_calloc(pc->ar, json_array_size(rules), sizeof(*p->rules));
		if (!p->rules)
			return;
	}
	json_array_foreach(rules, i, r) {
		authz_compile_pathf(path, sizeof(path), "spec.rules[%zu]", i);
		if (authz_compile_conv_rule(pc, r, &p->rules[n], path))
			n++;
	}
	p->n_rules = n;

	if (sel == 2)
		authz_compile_addmsg(pc, AUTHZ_MSG_WARNING,
		       "spec.selector has no matchLabels: Istio ambient attaches selector policies by labels, so this policy selects no workload");
	if (p->action == AZ_A_DENY && !json_array_size(rules))
		authz_compile_addmsg(pc, AUTHZ_MSG_WARNING,
		       "DENY policy without rules never matches; add an empty rule {} to deny everything");
	if (pc->n_l7) {
		char found[512] = "";
		size_t off = 0;

		/* istiod lists them sorted */
		for (size_t a = 0; a < pc->n_l7; a++)
			for (size_t b = a + 1; b < pc->n_l7; b++)
				if (strcmp(pc->l7[a], pc->l7[b]) > 0) {
					const char *t = pc->l7[a];

					pc->l7[a] = pc->l7[b];
					pc->l7[b] = t;
				}
		for (size_t a = 0; a < pc->n_l7 && off < sizeof(found); a++) {
			int w = snprintf(found + off, sizeof(found) - off, "%s%s", a ? ", " : "",
					 pc->l7[a]);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		authz_compile_addmsg(pc, AUTHZ_MSG_WARNING,
		       pc->wp ? "the waypoint does not enforce these attributes (found: %s). %s"
			      : "the tunnel does not enforce HTTP attributes (found: %s); use a waypoint for HTTP rules. %s",
		       found,
		       p->action == AZ_A_ALLOW ?
			       "Within an ALLOW policy, rules with HTTP attributes are omitted (never match): more restrictive than requested." :
		       authz_compile_has_effective_rules(p) ?
			       "The DENY policy is enforced without its HTTP attributes: more restrictive than requested." :
			       "Without its HTTP attributes this DENY policy has no enforceable rule and has no effect.");
	}
}

static int authz_compile_parse_mode(struct pctx *pc, const json_t *mtls, enum az_mtls *out, const char *path)
{
	const json_t *m, *v;
	const char *s, *k;

	*out = AZ_M_UNSET;
	if (!mtls || json_is_null(mtls))
		return 0;
	if (!json_is_object(mtls)) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: must be an object, found %s", path, authz_compile_jtype(mtls));
		return -EINVAL;
	}
	json_object_foreach((json_t *)mtls, k, v)
		if (strcmp(k, "mode"))
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s: unknown field \"%s\"", path, k);
	m = json_object_get(mtls, "mode");
	if (!m || json_is_null(m))
		return 0;
	s = json_string_value(m);
	if (!s) {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "%s.mode: must be a string, found %s", path, authz_compile_jtype(m));
		return -EINVAL;
	}
	if (!strcmp(s, "UNSET") || !*s)
		*out = AZ_M_UNSET;
	else if (!strcmp(s, "DISABLE"))
		*out = AZ_M_DISABLE;
	else if (!strcmp(s, "PERMISSIVE"))
		*out = AZ_M_PERMISSIVE;
	else if (!strcmp(s, "STRICT"))
		*out = AZ_M_STRICT;
	else {
		authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
		       "%s.mode: unknown mode \"%s\" (use STRICT, PERMISSIVE, DISABLE or UNSET)", path, s);
		return -EINVAL;
	}
	return 0;
}

static const char *authz_compile_mode_name(enum az_mtls m)
{
	switch (m) {
	case AZ_M_UNSET: return "UNSET";
	case AZ_M_DISABLE: return "DISABLE";
	case AZ_M_PERMISSIVE: return "PERMISSIVE";
	case AZ_M_STRICT: return "STRICT";
	}
	return "?";
}

static void authz_compile_conv_peerauthn(struct pctx *pc, const json_t *o, size_t idx)
{
	struct az_policy *p = pc->p;
	const json_t *spec, *plm, *v;
	const char *k;
	int sel;
	char path[128];
	bool is_root;

	p->kind = AUTHZ_KIND_PEER_AUTHENTICATION;
	p->state = AUTHZ_POLICY_ACTIVE;
	p->action = AZ_A_DENY;
	is_root = false;
	if (authz_compile_conv_meta(pc, o, idx, "PeerAuthentication", &spec)) {
		is_root = p->ns && !strcmp(p->ns, pc->root);
		p->scope = is_root ? AZ_SC_MESH : AZ_SC_NS;
		p->action_str = "?";
		return;
	}
	is_root = !strcmp(p->ns, pc->root);
	json_object_foreach((json_t *)spec, k, v)
		if (strcmp(k, "selector") && strcmp(k, "mtls") && strcmp(k, "portLevelMtls"))
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec: unknown field \"%s\"", k);
	sel = authz_compile_conv_selector(pc, spec);
	if (sel == 1)
		p->scope = is_root ? AZ_SC_NONE : AZ_SC_WL;
	else
		p->scope = is_root ? AZ_SC_MESH : AZ_SC_NS;
	if (sel == 1 && is_root && p->state != AUTHZ_POLICY_INVALID)
		/* istiod: a workload-level policy in the root namespace is never effective */
		p->state = AUTHZ_POLICY_IGNORED;

	authz_compile_parse_mode(pc, json_object_get(spec, "mtls"), &p->mode, "spec.mtls");
	p->action_str = authz_compile_mode_name(p->mode);
	if (p->mode == AZ_M_DISABLE)
		authz_compile_addmsg(pc, AUTHZ_MSG_WARNING,
		       "mode DISABLE acts as PERMISSIVE: the tunnel always uses mTLS between enrolled pods");

	plm = json_object_get(spec, "portLevelMtls");
	if (plm && !json_is_null(plm)) {
		size_t n = 0;

		if (!json_is_object(plm)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR, "spec.portLevelMtls: must be a map, found %s",
			       authz_compile_jtype(plm));
		} else if (!json_object_size(plm)) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.portLevelMtls: if defined, must have at least one element");
		} else if (sel != 1) {
			authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
			       "spec.portLevelMtls: mesh/namespace peer authentication cannot have port level mTLS");
		} else if ((p->ports = arena_calloc(pc->ar, json_object_size(plm), sizeof(*p->ports)))) {
			json_object_foreach((json_t *)plm, k, v) {
				uint16_t port;

				authz_compile_pathf(path, sizeof(path), "spec.portLevelMtls.%.32s", k);
				if (authz_compile_parse_port(k, &port)) {
					authz_compile_addmsg(pc, AUTHZ_MSG_ERROR,
					       "spec.portLevelMtls: key \"%s\" is not a port 1..65535", k);
					continue;
				}
				if (authz_compile_parse_mode(pc, v, &p->ports[n].mode, path))
					continue;
				p->ports[n++].port = port;
			}
			p->n_ports = n;
			if (p->state == AUTHZ_POLICY_ACTIVE)
				authz_compile_addmsg(pc, AUTHZ_MSG_INFO,
				       "portLevelMtls is applied per destination port");
		}
	}
	if (sel == 1 && is_root && p->state == AUTHZ_POLICY_IGNORED)
		authz_compile_addmsg(pc, AUTHZ_MSG_INFO,
		       "a PeerAuthentication with a selector in the root namespace %s is not used (as in Istio)",
		       pc->root);
}

static int authz_compile_cmp_policy(const void *a, const void *b)
{
	const struct az_policy *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);

	return c ? c : strcmp(x->name, y->name);
}

static int authz_compile_compile_list(struct authz_set *set, const json_t *arr, enum authz_policy_kind kind,
			struct az_policy **out, size_t *n_out)
{
	size_t n = json_array_size(arr), i;
	const json_t *o;

	*out = NULL;
	*n_out = 0;
	if (!n)
		return 0;
	*out = arena_calloc(&set->ar, n, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach(arr, i, o) {
		struct pctx pc = { .ar = &set->ar, .p = &(*out)[i], .root = set->root,
				   .wp = set->waypoint, .gw_ns = set->gw_ns, .gw_name = set->gw_name };

		if (kind == AUTHZ_KIND_AUTHORIZATION)
			authz_compile_conv_authz(&pc, o, i);
		else
			authz_compile_conv_peerauthn(&pc, o, i);
		if (set->ar.nomem)
			return -ENOMEM;
		if ((*out)[i].state == AUTHZ_POLICY_INVALID)
			set->n_invalid++;
	}
	*n_out = n;
	qsort(*out, n, sizeof(**out), authz_compile_cmp_policy);
	return 0;
}

int authz_compile(const json_t *authorization_policies, const json_t *peer_authentications,
		  const char *root_namespace, struct authz_set **out)
{
	struct authz_set *set = NULL;
	int ret;

	*out = NULL;
	if ((authorization_policies && !json_is_array(authorization_policies)) ||
	    (peer_authentications && !json_is_array(peer_authentications)))
		return -EINVAL;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	set->root = arena_strdup(&set->ar, root_namespace && *root_namespace ?
						root_namespace : AUTHZ_DEFAULT_ROOT_NAMESPACE);
	if (!set->root) {
		ret = -ENOMEM;
		goto out;
	}
	ret = authz_compile_compile_list(set, authorization_policies, AUTHZ_KIND_AUTHORIZATION, &set->ap,
			   &set->n_ap);
	if (ret)
		goto out;
	ret = authz_compile_compile_list(set, peer_authentications, AUTHZ_KIND_PEER_AUTHENTICATION, &set->pa,
			   &set->n_pa);
	if (ret)
		goto out;
	*out = set;
	set = NULL;
out:
	authz_set_free(set);
	return ret;
}

int authz_compile_waypoint(const json_t *authorization_policies, const char *root_namespace,
			   const char *gw_ns, const char *gw_name, struct authz_set **out)
{
	struct authz_set *set = NULL;
	int ret = -ENOMEM;

	*out = NULL;
	if ((authorization_policies && !json_is_array(authorization_policies)) || !gw_ns || !gw_name)
		return -EINVAL;
	set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	set->waypoint = true;
	set->root = arena_strdup(&set->ar, root_namespace && *root_namespace ?
						root_namespace : AUTHZ_DEFAULT_ROOT_NAMESPACE);
	set->gw_ns = arena_strdup(&set->ar, gw_ns);
	set->gw_name = arena_strdup(&set->ar, gw_name);
	if (set->root && set->gw_ns && set->gw_name)
		ret = authz_compile_compile_list(set, authorization_policies, AUTHZ_KIND_AUTHORIZATION, &set->ap,
				   &set->n_ap);
	if (!ret) {
		*out = set;
		set = NULL;
	}
	authz_set_free(set);
	return ret;
}

void authz_set_free(struct authz_set *set)
{
	if (!set)
		return;
	arena_free(&set->ar);
	free(set);
}

size_t authz_set_count(const struct authz_set *set)
{
	return set ? set->n_ap + set->n_pa : 0;
}

size_t authz_set_invalid_count(const struct authz_set *set)
{
	return set ? set->n_invalid : 0;
}
